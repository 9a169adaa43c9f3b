import math

import torch

from sert.config import SampleConfig
from sert.samplers import generate_greedy, sample_latent_paths
from sert.samplers.hf import top_k_top_p


def test_top_k_top_p_only_picks_allowed_tokens():
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0, 3.0]]).repeat(200, 1)
    u = torch.rand(200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    picked = set(top_k_top_p(logits, k=2, p=1.0, temperature=1.0, uniforms=u).tolist())
    assert picked == {0, 1}
    # top-p keeps the smallest prefix with the mass: token 0 alone holds > 0.5 here
    picked = set(top_k_top_p(logits, k=5, p=0.5, temperature=1.0, uniforms=u).tolist())
    assert picked == {0}


def test_latent_path_sampling_protocol(tiny_student):
    model, tok = tiny_student
    cfg = SampleConfig(branches=3, samples_per_branch=2, max_new_tokens=6, batch_size=2, seed=1)
    prompts = [("a", "Question: What is 1 + 2 mod 10?\nAnswer:"), ("b", "Question: x\nAnswer:"),
               ("c", "Question: What is 3 + 3 + 3 mod 10?\nAnswer:")]
    samples = list(sample_latent_paths(model, tok, prompts, cfg))
    assert len(samples) == 3 * 3 * 2
    for sample in samples:
        assert 0 <= sample.n_tokens <= 6 and 0 <= sample.rep2 <= 1
        assert sample.n_tokens == 0 or sample.perplexity >= 1.0
    # each branch starts with its own first token, shared by its samples
    first = {(s.id, s.branch): s.branch_token for s in samples}
    assert len({first[("a", b)] for b in range(3)}) == 3
    assert samples == list(sample_latent_paths(model, tok, prompts, cfg))  # seeded


def test_perplexity_matches_a_separate_forward_pass(tiny_student):
    model, tok = tiny_student
    prompt = "Question: What is 1 + 2 mod 10?\nAnswer:"
    cfg = SampleConfig(branches=1, samples_per_branch=1, max_new_tokens=5, batch_size=1)
    (sample,) = list(sample_latent_paths(model, tok, [("a", prompt)], cfg))
    ids = tok(prompt)["input_ids"]
    gen = tok(sample.text)["input_ids"]
    if len(gen) != sample.n_tokens:  # re-tokenisation can differ from the sampled ids; nothing to compare
        return
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids + gen])).logits[0].float(), -1)
    nll = -sum(logp[len(ids) - 1 + i, t].item() for i, t in enumerate(gen)) / len(gen)
    assert math.isclose(sample.perplexity, math.exp(nll), rel_tol=1e-3)


def test_greedy_is_batch_independent(tiny_student):
    model, tok = tiny_student
    prompts = ["Question: What is 1 + 2 mod 10?\nAnswer:", "Q", "Question: What is 9 + 9 + 9 + 9 mod 10?\nAnswer:"]
    together = generate_greedy(model, tok, prompts, 8, batch_size=3)
    alone = [generate_greedy(model, tok, [p], 8, batch_size=1)[0] for p in prompts]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


# --- batching, left padding, budgets ---------------------------------------------------------

from dataclasses import replace  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sert.samplers import fit_budget, trim_at_stop  # noqa: E402

PROMPTS = [("a", "Question: What is 1 + 2 mod 10?\nAnswer:"), ("b", "Q"),
           ("c", "Question: What is 3 + 3 + 3 mod 10?\nAnswer:"), ("d", "Question: What is 9 + 9 + 9 + 9 mod 10?")]


def test_left_padded_batch_matches_hf_generate_on_each_unpadded_prompt(tiny_student):
    """Greedy decoding of a padded batch equals HF's own greedy ``generate`` on each prompt alone,
    including a long prompt whose budget is capped by n_positions (128) and a short one whose
    padded cache grows past n_positions."""
    model, tok = tiny_student
    long_prompt = "Question: What is " + " + ".join("12345678"[i % 8] for i in range(25)) + " mod 10?\nAnswer:"
    prompts = ["Q", long_prompt, "Question: What is 1 + 2 mod 10?\nAnswer:"]
    budget = fit_budget(tok, prompts, 80, 128)
    assert budget.max_new[0] == 80 and 64 <= budget.max_new[1] == 128 - len(budget.prompt_ids[1]) < 80
    assert budget.shortened == 1 and budget.truncated_prompts == 0
    ours = generate_greedy(model, tok, prompts, 80, batch_size=3)
    for prompt_ids, new, gen in zip(budget.prompt_ids, budget.max_new, ours):
        ids = torch.tensor([prompt_ids])
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new,
                             pad_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)[0, len(prompt_ids):].tolist()
        if tok.eos_token_id in ref:
            ref = ref[: ref.index(tok.eos_token_id)]
        assert gen.token_ids == ref


def test_prefill_of_padded_rows_matches_unpadded_logits(tiny_student):
    from sert.samplers.hf import _prefill

    model, tok = tiny_student
    ids = [tok(p)["input_ids"] for _, p in PROMPTS]
    batched, _, _ = _prefill(model, ids, tok.pad_token_id)
    for row, p in enumerate(ids):
        with torch.no_grad():
            alone = torch.log_softmax(model(torch.tensor([p])).logits[0, -1].float(), -1)
        assert torch.allclose(batched[row], alone, atol=1e-4)


def test_overlong_prompts_are_left_truncated_with_a_count(tiny_student):
    _, tok = tiny_student
    budget = fit_budget(tok, ["Q", "1 + " * 200], 100, 128)
    assert budget.truncated_prompts == 1 and budget.shortened == 1
    assert len(budget.prompt_ids[1]) == 128 - 64 and budget.max_new[1] == 64
    assert budget.prompt_ids[1][-1] == tok("1 + " * 200)["input_ids"][-1]  # the end is kept
    assert "1 of 2 prompts left-truncated, 1 generations shorter" in budget.warning(128)
    budget = fit_budget(tok, ["1 + " * 200], 40, 128)  # a short budget is kept whole, the prompt cut
    assert (budget.truncated_prompts, budget.shortened, budget.max_new) == (1, 0, [40])


# --- per-question reproducibility ------------------------------------------------------------

def _key(samples):
    return [(s.id, s.branch, s.branch_token, s.text, s.n_tokens) for s in samples]


@pytest.mark.parametrize("branching", ["topk", "raw"])
def test_samples_do_not_depend_on_batch_composition(tiny_student, branching):
    model, tok = tiny_student
    cfg = SampleConfig(branches=2, samples_per_branch=3, max_new_tokens=10, batch_size=4, seed=3, branching=branching)
    together = list(sample_latent_paths(model, tok, PROMPTS, cfg))
    one_by_one = list(sample_latent_paths(model, tok, PROMPTS, replace(cfg, batch_size=1)))
    reordered = list(sample_latent_paths(model, tok, PROMPTS[::-1], replace(cfg, batch_size=3)))
    reordered = sorted(reordered, key=lambda s: [q for q, _ in PROMPTS].index(s.id))
    assert _key(together) == _key(one_by_one) == _key(reordered)
    for a, b in zip(together, one_by_one):
        assert math.isclose(a.perplexity, b.perplexity, rel_tol=1e-4)
    other_seed = list(sample_latent_paths(model, tok, PROMPTS, replace(cfg, seed=4)))
    assert _key(other_seed) != _key(together)


def test_raw_branching_samples_the_first_token_too(tiny_student):
    model, tok = tiny_student
    cfg = SampleConfig(branches=3, samples_per_branch=4, max_new_tokens=6, batch_size=2, branching="raw")
    samples = list(sample_latent_paths(model, tok, PROMPTS, cfg))
    assert len(samples) == len(PROMPTS) * 12
    assert {(s.branch, s.branch_token) for s in samples} == {(-1, "")}
    assert [s.id for s in samples] == [q for q, _ in PROMPTS for _ in range(12)]
    topk = list(sample_latent_paths(model, tok, PROMPTS, replace(cfg, branching="topk")))
    assert set(topk[0].to_json()) == set(samples[0].to_json())
    assert len({s.text for s in samples if s.id == "c"}) > 1
    assert {s.branch for s in topk} == {0, 1, 2}


def test_near_zero_temperature_is_greedy(tiny_student):
    model, tok = tiny_student
    cfg = SampleConfig(branches=1, samples_per_branch=3, max_new_tokens=8, batch_size=4, branching="raw",
                       temperature=1e-4)
    greedy_texts = [g.text for g in generate_greedy(model, tok, [p for _, p in PROMPTS], 8, batch_size=4)]
    samples = list(sample_latent_paths(model, tok, PROMPTS, cfg))
    assert [s.text for s in samples] == [t for t in greedy_texts for _ in range(3)]


# --- stop strings ----------------------------------------------------------------------------

def test_stop_strings_cut_each_row_where_it_first_appears(tiny_student):
    model, tok = tiny_student
    cfg = SampleConfig(branches=2, samples_per_branch=3, max_new_tokens=24, batch_size=4, seed=5)
    free = list(sample_latent_paths(model, tok, PROMPTS, cfg))
    # a stop string that occurs in some samples (the random model's text is unpredictable)
    longest = max(free, key=lambda s: len(s.text)).text
    stop = longest[len(longest) // 2 : len(longest) // 2 + 2]
    stopped = list(sample_latent_paths(model, tok, PROMPTS, replace(cfg, stop=[stop])))
    cut = 0
    for a, b in zip(free, stopped):
        assert stop not in b.text
        if stop in a.text:  # the same random stream up to the stop, then the row ends
            cut += 1
            assert b.text == a.text[: a.text.index(stop)] and b.n_tokens <= a.n_tokens
        else:
            assert (b.text, b.n_tokens) == (a.text, a.n_tokens)
    assert cut >= 1


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40), stops=st.lists(st.text(min_size=1, max_size=4), max_size=3))
def test_trim_at_stop_keeps_the_text_before_the_first_stop(tiny_student, text, stops):
    _, tok = tiny_student
    ids = tok(text)["input_ids"]
    lps = [-1.0] * len(ids)
    full = tok.decode(ids, skip_special_tokens=True)
    kept, kept_ids, kept_lps = trim_at_stop(tok, ids, lps, stops)
    assert full.startswith(kept) and not any(s in kept for s in stops)
    assert kept_ids == ids[: len(kept_ids)] and len(kept_lps) == len(kept_ids)
    hits = [full.index(s) for s in stops if s in full]
    if hits:
        assert kept == full[: min(hits)]
    else:
        assert (kept, kept_ids) == (full, ids)


# --- backends and params ---------------------------------------------------------------------

def test_vllm_backend_without_vllm_is_a_one_line_error():
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed")
    except ImportError:
        pass
    from sert.errors import ModelError
    from sert.samplers.vllm_engine import VllmSampler

    with pytest.raises(ModelError, match=r"pip install '\.\[vllm\]'") as err:
        VllmSampler("models/base", SampleConfig(backend="vllm"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key, value", [("backend", "tgi"), ("branching", "beam"), ("stop", ["x", ""])])
def test_unknown_backend_or_branching_is_a_params_error(key, value):
    from sert.config import parse_section
    from sert.errors import ParamsError

    with pytest.raises(ParamsError, match=rf"^sample\.{key}"):
        parse_section(SampleConfig, {key: value}, "sample")


# --- end tokens ------------------------------------------------------------------------------

def test_every_declared_end_token_ends_greedy_output(tiny_student):
    """The generation config may declare several end ids (a list): each one ends the output."""
    from sert.samplers.hf import end_token_ids

    model, tok = tiny_student
    prompt = "Question: What is 1 + 2 mod 10?\nAnswer:"
    plain = generate_greedy(model, tok, [prompt], 12, batch_size=1)[0].token_ids
    assert len(plain) >= 4 and tok.eos_token_id not in plain[:3]
    saved = model.generation_config.eos_token_id
    try:
        model.generation_config.eos_token_id = [tok.eos_token_id, plain[2]]
        assert end_token_ids(model, tok) == sorted({tok.eos_token_id, plain[2]})
        ended = generate_greedy(model, tok, [prompt], 12, batch_size=1)[0].token_ids
    finally:
        model.generation_config.eos_token_id = saved
    assert ended == plain[: plain.index(plain[2])]


def test_an_empty_sample_has_null_perplexity_in_strict_json():
    import json

    from sert.samplers import Sample, perplexity

    assert perplexity([]) is None and math.isclose(perplexity([-1.0, -3.0]), math.exp(2.0))
    record = Sample(id="a", branch=0, branch_token="<|endoftext|>", text="", n_tokens=0, perplexity=perplexity([]),
                    rep2=0.0, eos_branch=True).to_json()
    assert json.loads(json.dumps(record, allow_nan=False))["perplexity"] is None


# --- perplexity of the kept reasoning ---------------------------------------------------------

def _kept_case(tok, reasoning, tail):
    ids = tok(reasoning + tail, add_special_tokens=False)["input_ids"]
    lps = [-0.1 * (i + 1) for i in range(len(ids))]  # distinct, so a wrong prefix gives another value
    return ids, lps


def test_kept_perplexity_covers_the_reasoning_tokens_only():
    from sert.samplers import kept_perplexity, perplexity
    from tests.conftest import gpt2_tokenizer

    tok = gpt2_tokenizer()
    reasoning = " A pear is less dense than water, so it floats."
    ids, lps = _kept_case(tok, reasoning, " So the answer is no.")
    n = len(tok(reasoning, add_special_tokens=False)["input_ids"])
    text = tok.decode(ids)
    assert math.isclose(kept_perplexity(tok, text, ids, lps), perplexity(lps[:n]))
    assert kept_perplexity(tok, reasoning, ids[:n], lps[:n]) == perplexity(lps[:n])  # no clause: the whole sample
    ids, lps = _kept_case(tok, "", " The answer is no.")
    assert kept_perplexity(tok, tok.decode(ids), ids, lps) is None  # nothing is kept


@settings(max_examples=60, deadline=None)
@given(reasoning=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40),
       prefix=st.sampled_from([" So the answer is", " Therefore, the answer is", "\nthe answer is:"]))
def test_kept_perplexity_uses_the_shortest_prefix_covering_the_kept_text(reasoning, prefix):
    from sert.samplers import covering_prefix, kept_perplexity, perplexity
    from sert.text import split_answer_clause
    from tests.conftest import gpt2_tokenizer

    tok = gpt2_tokenizer()
    ids, lps = _kept_case(tok, reasoning, prefix + " yes.")
    text = tok.decode(ids, skip_special_tokens=True)
    kept = split_answer_clause(text)[0].rstrip()
    k = covering_prefix(tok, ids, len(kept))
    assert len(tok.decode(ids[:k])) >= len(kept) and (k == 0 or len(tok.decode(ids[: k - 1])) < len(kept))
    value = kept_perplexity(tok, text, ids, lps)
    assert value == (perplexity(lps[:k]) if kept else None)


# --- speed features that must not move a result -----------------------------------------------

@pytest.fixture(scope="module")
def wide_gpt2():
    """A random 2-layer GPT-2 256 wide with the real GPT-2 tokenizer: tensors large enough that the
    vocabulary blocks split and the OpenMP threads share the work."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from conftest import gpt2_tokenizer

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=256, n_head=4)).eval()
    return model, gpt2_tokenizer()


def _full(samples):
    return [s.to_json() for s in samples]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_vocabulary_blocks_change_no_sample(wide_gpt2, monkeypatch, precision):
    """Picking the next tokens a block of rows at a time gives the same samples and greedy outputs
    bit for bit, perplexities and log-probabilities included."""
    import sert.samplers.hf as hf
    from sert.modeling import for_inference

    model, tok = wide_gpt2
    model = for_inference(model, precision, "sample")
    cfg = SampleConfig(branches=2, samples_per_branch=4, max_new_tokens=12, batch_size=3, seed=5)
    prompts = [(f"q{i}", f"Question: is {i} plus {i} more than {3 * i}? Answer:") for i in range(3)]
    whole = _full(sample_latent_paths(model, tok, prompts, cfg))
    greedy_whole = generate_greedy(model, tok, [p for _, p in prompts], 10, batch_size=3)
    monkeypatch.setattr(hf, "VOCAB_BLOCK_BYTES", 4 * 50257 * 3)  # 3 rows a block: 24 rows in 8 blocks
    assert _full(sample_latent_paths(model, tok, prompts, cfg)) == whole
    greedy_blocks = generate_greedy(model, tok, [p for _, p in prompts], 10, batch_size=3)
    assert [(g.token_ids, g.logprobs) for g in greedy_blocks] == [(g.token_ids, g.logprobs) for g in greedy_whole]


def test_decode_workers_change_no_sample(wide_gpt2, monkeypatch):
    """Batches decoded on several threads at once give the samples and greedy outputs of one thread,
    bit for bit, in the same order; in bf16, where a second OpenMP thread inside a batch would not."""
    from sert.modeling import for_inference

    model, tok = wide_gpt2
    model = for_inference(model, "bf16", "sample")
    cfg = SampleConfig(branches=2, samples_per_branch=3, max_new_tokens=12, batch_size=1, seed=5)
    prompts = [(f"q{i}", f"Question: is {i} plus {i} more than {3 * i}? Answer:") for i in range(5)]
    runs = {}
    for workers in ("1", "3"):
        monkeypatch.setenv("SERT_DECODE_WORKERS", workers)
        samples = _full(sample_latent_paths(model, tok, prompts, cfg))
        greedy = generate_greedy(model, tok, [p for _, p in prompts], 10, batch_size=2)
        runs[workers] = samples, [(g.token_ids, g.logprobs) for g in greedy]
    assert runs["3"] == runs["1"]
    assert [s["id"] for s in runs["3"][0]] == [q for q, _ in prompts for _ in range(6)]


def test_a_failing_worker_stops_the_others_and_its_error_comes_through():
    """ordered_map: the first failure is raised in the caller; workers still running stop at their
    next cancellation point, and no queued item starts."""
    import threading
    import time

    from sert.workers import Cancelled, cancellation_point, ordered_map

    started, cancelled = [], []
    lock = threading.Lock()

    def work(item):
        with lock:
            started.append(item)
        if item == 1:
            raise ValueError("bad batch")
        try:
            for _ in range(500):  # a long decode: 5 s unless cancelled
                cancellation_point()
                time.sleep(0.01)
        except Cancelled:
            with lock:
                cancelled.append(item)
            raise
        return item

    begin = time.monotonic()
    with pytest.raises(ValueError, match="bad batch"):
        list(ordered_map(work, list(range(6)), 2))
    assert time.monotonic() - begin < 3
    # item 2 may start in the moment between item 1's failure and the stop; nothing after it can
    assert {0, 1} <= set(started) <= {0, 1, 2} and sorted(cancelled) == sorted(set(started) - {1})
    assert list(ordered_map(lambda x: x * x, [3, 1, 2], 2)) == [9, 1, 4]
    cancellation_point()  # outside a worker: nothing to stop
