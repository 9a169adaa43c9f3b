"""GPU checks (skipped without CUDA; the vLLM part also without vLLM): both sampling backends on
the same prompts with a random-weight GPT-2-small and the real GPT-2 tokenizer (offline).

    PYTHONPATH=$PWD python -m pytest -q -s tests/test_gpu.py
"""

import math
import os
import statistics

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

from sert.config import SampleConfig
from sert.samplers import sample_latent_paths
from sert.text import split_answer_clause  # noqa: E402

PROMPTS = [(f"q{i}", f"Question: {text}\nAnswer:") for i, text in enumerate([
    "Where would you put a plate after washing it?",
    "What do people use to cut paper?",
    "If a river freezes in winter, what can people do on it?",
    "Which is heavier, a kilogram of iron or a kilogram of feathers?",
])]
CFG = SampleConfig(branches=5, samples_per_branch=5, max_new_tokens=32, batch_size=4, seed=0)
FIELDS = {"id": str, "branch": int, "branch_token": str, "text": str, "n_tokens": int, "perplexity": float,
          "rep2": float, "eos_branch": bool, "kept_perplexity": float}


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    from sert.modeling import offline_gpt2_tokenizer, save_student

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gpt2-random")
    tokenizer = offline_gpt2_tokenizer()
    model = GPT2LMHeadModel(GPT2Config(bos_token_id=50256, eos_token_id=50256, pad_token_id=50256))
    save_student(model, tokenizer, path)
    return path


def check_samples(samples, cfg=CFG):
    per_question = cfg.branches * cfg.samples_per_branch
    assert len(samples) == len(PROMPTS) * per_question
    assert [s.id for s in samples] == [q for q, _ in PROMPTS for _ in range(per_question)]
    for s in samples:
        record = s.to_json()
        no_clause = split_answer_clause(s.text)[1] is None
        nulls = {"perplexity": type(None)} if not s.n_tokens else {}
        if s.kept_perplexity is None:  # nothing before the answer clause, or an empty sample
            assert not split_answer_clause(s.text)[0].strip()
            nulls["kept_perplexity"] = type(None)
        assert {k: type(v) for k, v in record.items()} == FIELDS | nulls
        assert not no_clause or s.kept_perplexity == s.perplexity
        assert 0 <= s.n_tokens <= cfg.max_new_tokens and 0 <= s.rep2 <= 1
        assert s.n_tokens == 0 or 1 <= s.perplexity < 1e6
    if cfg.branching == "topk":
        assert {s.branch for s in samples} == set(range(cfg.branches))
    return statistics.mean(math.log(s.perplexity) for s in samples if s.n_tokens)


def hf_samples(gpt2_dir, dtype, cfg=CFG):
    from sert.modeling import load_student

    model, tokenizer = load_student(str(gpt2_dir))
    model = model.to("cuda", dtype=dtype)
    return list(sample_latent_paths(model, tokenizer, PROMPTS, cfg))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_hf_backend_on_cuda(gpt2_dir, dtype):
    samples = hf_samples(gpt2_dir, dtype)
    log_ppl = check_samples(samples)
    # a random GPT-2 is close to uniform over its 50,257 tokens: log-perplexity well above a trained one's ~3 (below log(50257) = 10.8)
    assert 5 < log_ppl < 11.5, log_ppl
    again = hf_samples(gpt2_dir, dtype)
    assert [s.text for s in again] == [s.text for s in samples]  # seeded per question
    raw = hf_samples(gpt2_dir, dtype, SampleConfig(**{**CFG.__dict__, "branching": "raw"}))
    check_samples(raw, SampleConfig(**{**CFG.__dict__, "branching": "raw"}))


def test_hf_cuda_matches_hf_cpu_mostly(gpt2_dir):
    from sert.modeling import load_student

    model, tokenizer = load_student(str(gpt2_dir))
    cpu = list(sample_latent_paths(model, tokenizer, PROMPTS, CFG))
    cuda = hf_samples(gpt2_dir, torch.float32)
    same_branch = statistics.mean(a.branch_token == b.branch_token for a, b in zip(cpu, cuda))
    same_text = statistics.mean(a.text == b.text for a, b in zip(cpu, cuda))
    print(f"cpu vs cuda fp32: same branch token {same_branch:.2f}, same text {same_text:.2f}")
    # near-uniform random logits make rare flips possible; per-question seeding makes most rows equal
    assert same_branch >= 0.8 and same_text >= 0.5


def test_vllm_and_hf_backends_agree_on_schema_and_statistics(gpt2_dir):
    pytest.importorskip("vllm")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from sert.samplers.vllm_engine import VllmSampler

    hf = hf_samples(gpt2_dir, torch.float32)
    torch.cuda.empty_cache()
    sampler = VllmSampler(str(gpt2_dir), CFG, dtype="float32", gpu_memory_utilization=0.4, enforce_eager=True)
    budget = sampler.plan([p for _, p in PROMPTS])
    vllm = sampler.sample([q for q, _ in PROMPTS], budget.prompt_ids, budget.max_new)
    hf_log_ppl, vllm_log_ppl = check_samples(hf), check_samples(vllm)
    assert [s.to_json().keys() for s in hf] == [s.to_json().keys() for s in vllm]
    assert [(s.id, s.branch) for s in hf] == [(s.id, s.branch) for s in vllm]
    same_branch = statistics.mean(a.branch_token == b.branch_token for a, b in zip(hf, vllm))
    print(f"hf vs vllm: log-perplexity {hf_log_ppl:.3f} vs {vllm_log_ppl:.3f}; same branch token {same_branch:.2f}; "
          f"mean tokens {statistics.mean(s.n_tokens for s in hf):.1f} vs {statistics.mean(s.n_tokens for s in vllm):.1f}")
    assert abs(hf_log_ppl - vllm_log_ppl) < 0.05 * hf_log_ppl  # the same model's own log-probabilities
    assert same_branch >= 0.8  # the first-step top-5 is deterministic; only near-ties may flip
    again = sampler.sample([q for q, _ in PROMPTS], budget.prompt_ids, budget.max_new)
    assert [s.text for s in again] == [s.text for s in vllm]  # per-request seeds


def test_bf16_training_on_cuda_learns_and_tracks_fp32():
    """The training loop under bf16 autocast on CUDA: the loss falls on a repeated batch, and the
    first step's loss matches an fp32 run's within bf16 precision."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from sert.config import TrainConfig
    from sert.runtime import resolve_precision
    from sert.training import prompt_target, train_causal_lm

    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    gen = torch.Generator().manual_seed(0)
    examples = [prompt_target(torch.randint(256, 50000, (20,), generator=gen).tolist(),
                              torch.randint(256, 50000, (60,), generator=gen).tolist()) for _ in range(8)]
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(n_layer=4, bos_token_id=50256, eos_token_id=50256))
        cfg = TrainConfig(epochs=20, batch_size=8, lr=1e-3, precision=precision, device="cuda", checkpoint_every=0)
        losses[precision] = train_causal_lm(model, examples, cfg, 50256)
        assert next(model.parameters()).device.type == "cuda"
    print(f"loss fp32 {losses['fp32'][0]:.4f} -> {losses['fp32'][-1]:.4f}; bf16 {losses['bf16'][0]:.4f} -> {losses['bf16'][-1]:.4f}")
    assert abs(losses["bf16"][0] - losses["fp32"][0]) < 0.05 * losses["fp32"][0]
    assert losses["bf16"][-1] < 0.5 * losses["bf16"][0]    # memorizes one repeated batch
