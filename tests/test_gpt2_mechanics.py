"""The real GPT-2 tokenizer (offline) and a randomly initialised GPT-2-small through the prepare ->
base -> sample -> filter stages on a few real StrategyQA questions: mechanics only, no claim
about accuracy."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from conftest import SHARED, gpt2_tokenizer
from sert.config import FilterConfig
from sert.filtering import filter_samples
from sert.samplers import Sample
from sert.training import collate, prompt_target
from stages.cli import app
from stages.presets import preset

STRATEGYQA = SHARED / "data/strategyqa/task.json"


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer()


def test_tokenizer_is_gpt2s(tokenizer):
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert tokenizer.eos_token_id == 50256 and len(tokenizer) == 50257


def sample_of(text, tokenizer):
    return Sample("q", 0, " The", text, len(tokenizer(text)["input_ids"]), 10.0, 0.0, kept_perplexity=10.0)


def test_length_filter_counts_gpt2_tokens(tokenizer):
    """filter.unit: model counts the sampler's GPT-2 tokens of the whole sample."""
    words = " one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    base = " Because" + words + " so"  # reasoning words before the answer clause
    texts = [base + " the answer is yes.", base + " it goes on. So the answer is yes."]
    counts = [len(tokenizer(t)["input_ids"]) for t in texts]
    threshold = max(counts)
    kept, funnel = filter_samples([sample_of(t, tokenizer) for t in texts],
                                  FilterConfig(min_length=threshold, max_rep2=1.0, min_perplexity=0.0, unit="model"))
    assert counts[0] < threshold and funnel["after_pattern"] == 2 and funnel["after_length"] == 1
    assert kept[0].text == texts[1]


def test_prompt_length_and_truncation(tokenizer):
    prompt = tokenizer("Question: Is water wet?\nAnswer:")["input_ids"]
    target = tokenizer(" Yes, it is. So the answer is yes.")["input_ids"] + [tokenizer.eos_token_id]
    assert len(prompt) == 9
    batch = collate([prompt_target(prompt, target)], tokenizer.pad_token_id, max_length=12)
    assert batch["input_ids"].shape == (1, 12)                  # truncated at max_length
    assert (batch["labels"][0, :9] == -100).all()                # no loss on the prompt
    assert batch["labels"][0, 9:].tolist() == target[:3]        # loss on the target tokens that fit


@pytest.mark.skipif(not STRATEGYQA.is_file(), reason=f"{STRATEGYQA} not found (shared data sits beside CI's checkout only)")
def test_random_gpt2_small_runs_prepare_sample_filter(tmp_path, tokenizer, monkeypatch):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config())                       # GPT-2 small: 124M parameters
    assert 124_000_000 < sum(p.numel() for p in model.parameters()) < 125_000_000
    student = tmp_path / "gpt2-random"
    model.save_pretrained(student)
    tokenizer.save_pretrained(student)
    del model

    project = tmp_path / "project"
    project.mkdir()
    params = preset("strategyqa-gpt2")
    params["task"].update(source=str(STRATEGYQA), subset_train=2, subset_test=1)
    params["student"]["model"] = str(student)
    params["sample"].update(branches=3, samples_per_branch=2, max_new_tokens=16, batch_size=2)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(project)
    runner = CliRunner()
    for command in ("prepare", "base", "sample"):
        result = runner.invoke(app, [command])
        assert result.exit_code == 0, result.output
    samples = [json.loads(line) for line in (project / "data/samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 3 * 2
    for s in samples:
        # A random model's perplexity over GPT-2's 50,257 tokens is huge; counts are generated GPT-2 tokens.
        assert 1 <= s["n_tokens"] <= 16 and s["perplexity"] > 100 and 0 <= s["rep2"] <= 1
    assert {s["branch"] for s in samples} == {0, 1, 2}
    result = runner.invoke(app, ["filter"])
    # A random model writes no reasoning: the filter either keeps some paths or says which filter emptied the set.
    if result.exit_code != 0:
        assert "samples 12 -> after_pattern" in result.output, result.output
    else:
        assert (project / "data/self_train.jsonl").is_file()
