"""Iterated SERT (sert.rounds): the train-sert stage's extra rounds (configured backend, resumable
shards), the rounds stage's per-round metrics and the report's per-round table and curve,
in-process on a tiny random model."""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from test_vllm_contract import fake_vllm_module

from sert.errors import ParamsError
from sert.io import write_json, write_jsonl
from sert.modeling import save_student
from sert.report import rounds_markdown, rounds_svg, rows_from_metrics, stack_svg
from sert.samplers import HFSampler
from stages import evaluate, prepare, report, rounds, train_sert
from sert.config import VARIANTS
from stages.common import load_params

PARAMS = {
    "task": {"options": {"modsum": {"n_train": 4, "n_test": 3}}},
    # Enough steps for the random tiny model to learn the self-training texts by heart, so that
    # round 2's samples (from the round-1 model) have an answer clause and pass the filters.
    "train": {"epochs": 40, "batch_size": 4, "lr": 0.01, "checkpoint_every": 0},
    "sample": {"branches": 2, "samples_per_branch": 2, "max_new_tokens": 64, "batch_size": 4},
    "filter": {"min_length": 1, "max_rep2": 1.0, "min_perplexity": 0.0, "min_reasoning_words": 1},
    "evaluate": {"max_new_tokens": 64},
    "sert": {"rounds": 2},
}


def weights(path: Path) -> dict:
    return load_file(str(next(path.glob("*.safetensors"))))


@pytest.fixture
def workdir(tmp_path, monkeypatch, tiny_student):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(PARAMS))
    params = Path("params.yaml")
    prepare.main(params=params)
    model, tokenizer = tiny_student
    save_student(model, tokenizer, Path("models/base"))
    train_records = [json.loads(line) for line in Path("data/prepared/train.jsonl").read_text().splitlines()]
    # Round 1's self-training set, as the filter stage would write it (hand-written reasoning).
    write_jsonl("data/self_train.jsonl", [{**r, "reasoning": "add the numbers one by one",
                                           "sample": "add the numbers one by one. So the answer is 1."}
                                          for r in train_records])
    write_json("metrics/filter.json", {"samples": 16, "selected": len(train_records)})
    return params


def set_params(**sections) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    Path("params.yaml").write_text(yaml.safe_dump(params))


def test_two_rounds_train_evaluate_and_report(workdir):
    train_sert.main(params=workdir)
    stats = json.loads(Path("models/sert_rounds/rounds.json").read_text())
    assert [s["round"] for s in stats] == [1, 2]
    assert stats[0] == {"round": 1, "samples": 16, "selected": 4}
    assert stats[1]["samples"] == 4 * 2 * 2 and 1 <= stats[1]["selected"] <= 4
    round1, final = weights(Path("models/sert_rounds/round-1")), weights(Path("models/sert"))
    assert not all((round1[k] == final[k]).all() for k in final)  # models/sert is round 2's model
    assert not (Path("models/sert_rounds") / "round-2").exists()
    curve = Path("metrics/plots/train/sert.csv").read_text().splitlines()
    assert len(curve) - 1 > json.loads(Path("metrics/train/sert.json").read_text())["steps"]  # both rounds

    evaluate.main("sert", params=workdir)
    rounds.main(params=workdir)
    metrics = json.loads(Path("metrics/rounds.json").read_text())
    assert set(metrics) == {"round_1", "round_2"}
    for m in metrics.values():
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["reasoning_rate"] <= 1
    sert_eval = json.loads(Path("metrics/eval/sert.json").read_text())
    assert metrics["round_2"]["accuracy"] == sert_eval["accuracy"]
    # The round-1 model reasons after the training prompt it learned (it memorised the texts).
    assert metrics["round_1"]["reasoning_rate"] > 0
    plot = json.loads(Path("metrics/plots/rounds.json").read_text())
    assert [r["round"] for r in plot] == [1, 2] and plot == rows_from_metrics(metrics)

    # The report: other variants' files faked from sert's (only the rounds part is under test here).
    for v in VARIANTS:
        if v != "sert":
            write_json(f"metrics/eval/{v}.json", sert_eval)
            Path(f"data/predictions/{v}.jsonl").write_text(Path("data/predictions/sert.jsonl").read_text())
    write_json("metrics/teacher.json", {"backend": "oracle", "n": 4, "n_correct": 4, "accuracy": 1.0})
    write_json("metrics/eval/teacher.json", {"available": False, "reason": "not under test"})
    write_json("metrics/judge.json", {"enabled": False})
    report.main(params=workdir)
    md = Path("metrics/report.md").read_text()
    assert "## Iterated SERT: per round" in md
    assert f"| 2 | 16 | {stats[1]['selected']} | {sert_eval['accuracy']:.3f} |" in md
    svg = ET.fromstring(Path("metrics/report.svg").read_text())
    assert len(svg.findall("{http://www.w3.org/2000/svg}svg")) == 2  # the figure and the curve


def test_one_round_is_the_paper_and_reports_no_curve(workdir, monkeypatch):
    set_params(sert={"rounds": 1}, train={"epochs": 1})
    sampled = []
    monkeypatch.setattr(HFSampler, "sample", lambda self, *args: sampled.append(args))
    train_sert.main(params=workdir)
    assert sampled == []  # one round samples nothing (the sample stage did)
    assert json.loads(Path("models/sert_rounds/rounds.json").read_text()) == [
        {"round": 1, "samples": 16, "selected": 4}]
    assert sorted(p.name for p in Path("models/sert_rounds").iterdir()) == ["rounds.json"]
    evaluate.main("sert", params=workdir)
    rounds.main(params=workdir)
    assert set(json.loads(Path("metrics/rounds.json").read_text())) == {"round_1"}
    assert json.loads(Path("metrics/plots/rounds.json").read_text()) == []  # a single point: no chart


def test_a_crashed_round_resumes_from_its_shards_to_the_same_model(workdir, monkeypatch, capsys):
    """Round 2's sampling goes through the sharded path: a crash after its first shard keeps that
    shard, the rerun samples only the other questions and ends with the uninterrupted run's model."""
    set_params(sample={"batch_size": 1})  # one question per shard: 4 shards in round 2
    monkeypatch.setenv("SERT_DECODE_WORKERS", "1")  # one batch at a time: the crash comes after one finished shard
    train_sert.main(params=workdir)
    straight = {name: Path(name).read_bytes() for name in ("models/sert/model.safetensors",
                                                           "models/sert_rounds/rounds.json",
                                                           "metrics/plots/train/sert.csv")}
    assert not Path(".sert-cache/train-sert").exists()  # the shards are removed with the outputs written

    sample, calls = HFSampler.sample, []

    def crash_on_second_batch(self, ids, *args):
        calls.append(list(ids))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill would, between two shards
        return sample(self, ids, *args)

    monkeypatch.setattr(HFSampler, "sample", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        train_sert.main(params=workdir)
    assert len(list(Path(".sert-cache/train-sert/round-2").glob("*/shard-*.jsonl"))) == 1

    calls.clear()
    monkeypatch.setattr(HFSampler, "sample", lambda self, ids, *args: calls.append(list(ids)) or sample(self, ids, *args))
    capsys.readouterr()
    train_sert.main(params=workdir)
    assert "sample round 2: resuming, 1 of 4 shards" in capsys.readouterr().out
    assert len(calls) == 3  # the first question's shard was not sampled again
    assert {name: Path(name).read_bytes() for name in straight} == straight
    assert not Path(".sert-cache/train-sert").exists()


def test_round_two_samples_with_the_configured_vllm_backend(workdir, monkeypatch):
    """sample.backend: vllm applies to every round: round 2 starts an engine on the saved round-1
    model (vLLM loads checkpoints only) and the transformers sampler is not used."""
    fake = fake_vllm_module()
    engines = []

    class RecordingLLM(fake.LLM):
        def __init__(self, model, **kwargs):
            super().__init__(model, **kwargs)
            engines.append((model, self))

    fake.LLM = RecordingLLM
    monkeypatch.setitem(sys.modules, "vllm", fake)

    def no_hf(*args, **kwargs):
        raise AssertionError("round 2 used the transformers sampler with sample.backend: vllm")

    monkeypatch.setattr(HFSampler, "sample", no_hf)
    set_params(sample={"backend": "vllm", "seed": 5})
    train_sert.main(params=workdir)
    assert len(engines) == 1
    model_dir, engine = engines[0]
    assert Path(model_dir).name == "round-1" and Path(model_dir).parent.parent == Path("models")
    # The engine was seeded with round 2's seed (sample.seed + 1) and sampled every train question.
    assert engine.engine_args["seed"] == 6
    heads = engine.calls[0]  # the first-step branching request of the only batch
    assert len(heads) == 4 and all(sp.max_tokens == 1 and sp.logprobs == 2 for _, sp, _ in heads)
    stats = json.loads(Path("models/sert_rounds/rounds.json").read_text())
    assert stats[1]["round"] == 2 and stats[1]["samples"] == 4 * 2 * 2 and stats[1]["selected"] >= 1


def test_rounds_must_be_positive(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sert:\n  rounds: 0\n")
    with pytest.raises(ParamsError, match="sert.rounds: must be at least 1"):
        load_params(path)


def test_markdown_and_curve_of_three_rounds():
    rows = [{"round": k, "samples": 100, "selected": 40 + k, "accuracy": 0.1 * k, "reasoning_rate": 0.3 * k}
            for k in (1, 2, 3)]
    md = rounds_markdown(rows)
    assert "| 3 | 100 | 43 | 0.300 | 0.900 |" in md
    svg = ET.fromstring(rounds_svg(rows))
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2 and all(len(line.get("points").split()) == 3 for line in lines)
    # Accuracy rises from round 1 to 3, so its line goes up (smaller y) from left to right.
    ys = [float(pt.split(",")[1]) for pt in lines[0].get("points").split()]
    assert ys[0] > ys[1] > ys[2]
    stacked = ET.fromstring(stack_svg(rounds_svg(rows), rounds_svg(rows)))
    assert int(stacked.get("height")) == 2 * int(svg.get("height"))
    assert rows_from_metrics({f"round_{r['round']}": {k: v for k, v in r.items() if k != "round"}
                              for r in reversed(rows)}) == rows
