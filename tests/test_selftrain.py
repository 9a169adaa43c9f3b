"""sert/selftrain.py: the sharded sampling every round uses gives the plain sampler's samples,
reuses finished shards without starting a sampler, and the selection names its round on failure."""

from dataclasses import replace

import pytest

import sert.selftrain as selftrain
from sert.errors import EmptyResultError
from sert.config import FilterConfig, SampleConfig
from sert.modeling import load_student, save_student
from sert.samplers import sample_latent_paths
from sert.selftrain import sample_filter_select, sample_shards, select_paths

PROMPTS = [(f"q{i}", f"Question: What is {i} + {i + 1} mod 10?\nAnswer:") for i in range(5)]
CFG = SampleConfig(branches=2, samples_per_branch=2, max_new_tokens=12, batch_size=2, device="cpu", precision="fp32")


@pytest.fixture
def model_dir(tiny_student, tmp_path):
    model, tok = tiny_student
    save_student(model, tok, tmp_path / "model")
    return tmp_path / "model"


def test_sharded_samples_are_the_plain_samplers_and_finished_shards_start_no_sampler(model_dir, tmp_path,
                                                                                   monkeypatch):
    model, tok = load_student(str(model_dir))
    plain = list(sample_latent_paths(model, tok, PROMPTS, CFG))
    work = tmp_path / "work"
    run = sample_shards(PROMPTS, CFG, work, model_dir, log=lambda _: None)
    assert run.resumed == 0 and len(run.writer.done()) == 3  # 5 questions, 2 per shard
    assert run.samples() == plain
    # From the model on disk or the one in memory: the same records.
    assert sample_shards(PROMPTS, CFG, tmp_path / "other", model_dir, model=model, tokenizer=tok,
                         log=lambda _: None).samples() == plain

    def no_sampler(*args, **kwargs):
        raise AssertionError("a sampler was started although every shard was there")

    monkeypatch.setattr(selftrain, "open_sampler", no_sampler)
    messages = []
    again = sample_shards(PROMPTS, CFG, work, model_dir, desc="sample round 3", log=messages.append)
    assert again.resumed == 3 and again.samples() == plain
    assert messages == [f"sample round 3: resuming, 3 of 3 shards already in {run.writer.dir}"]
    # Another config is another key: the old shards are not reused.
    with pytest.raises(AssertionError, match="a sampler was started"):
        sample_shards(PROMPTS, replace(CFG, seed=1), work, model_dir, log=messages.append)


def test_selection_and_its_errors(model_dir, tmp_path):
    loose = FilterConfig(min_length=1, max_rep2=1.0, min_perplexity=0.0, min_reasoning_words=1)
    selected, funnel, run = sample_filter_select(PROMPTS, CFG, loose, None, tmp_path / "work", model_dir,
                                                 log=lambda _: None)
    assert funnel["samples"] == 5 * 2 * 2 and funnel["selected"] == len(selected) == len({s.id for s in selected})
    assert run.writer.dir.is_dir()  # kept for the caller, who removes them when its outputs are written
    strict = replace(loose, min_length=10_000)
    with pytest.raises(EmptyResultError, match=r"^train sert round 2: no sample survived the filters \(samples 20 "
                                               r"-> .*\); loosen the filter params or lower sert\.rounds$"):
        select_paths(run.samples(), strict, None, "train sert round 2: ", " or lower sert.rounds")
    with pytest.raises(ValueError, match="backend"):  # a SampleConfig cannot hold an unknown backend
        replace(CFG, backend="tgi")
