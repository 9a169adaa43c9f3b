"""GSM8K, coin flip and last-letter run through every stage on the tiny student (in process,
through the `sert` CLI, on very small settings): mechanics, not accuracy."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from stages.cli import app
from sert.config import VARIANTS

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SMALL = {
    "task": {"subset_train": 10, "subset_test": 6},   # coin flip and last letter generate 350 / 150
    "pretrain": {"n_layer": 1, "n_embd": 64, "n_head": 2, "documents": 1500, "steps": 150, "batch_size": 16,
                 "lr": 0.003, "warmup_steps": 15, "worked_fraction": 0.5},
    "sample": {"branches": 2, "samples_per_branch": 2, "max_new_tokens": 24},
    # Permissive filters: the point is that every stage runs on the task, not what survives.
    "filter": {"min_length": 1, "max_rep2": 1.0, "min_perplexity": 0.0, "min_reasoning_words": 0},
    "train": {"epochs": 1},
    "evaluate": {"max_new_tokens": 24},
}


def gsm8k_files(directory):
    """A few GSM8K-format problems (the real dataset is not available offline)."""
    rows = []
    for i in range(16):
        a, b = 2 + i % 7, 3 + i % 5
        rows.append({"question": f"Sam has {a} pens and buys {b} more. How many pens?",
                     "answer": f"Sam has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} pens.\n#### {a + b}"})
    directory.mkdir()
    (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:10]))
    (directory / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[10:]))


@pytest.mark.parametrize("name", ["gsm8k", "coinflip", "lastletter"])
def test_task_runs_through_every_stage_on_the_tiny_student(name, tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in SMALL.items():
        params[section].update(values)
    params["task"]["name"] = name
    if name == "gsm8k":
        gsm8k_files(tmp_path / "gsm8k")
        params["task"]["source"] = str(tmp_path / "gsm8k")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    commands = [["prepare"], ["base"], ["sample"], ["filter"], ["teacher"], ["teacher-row"]]
    commands += [["train-sert"]] + [["train", v] for v in ("finetune", "rd", "sert_rd")]
    commands += [["evaluate", v] for v in VARIANTS] + [["rounds"], ["judge"], ["report"]]
    for command in commands:
        result = runner.invoke(app, command)
        assert result.exit_code == 0, f"{command}: {result.output}"
    teacher = json.loads((tmp_path / "metrics/teacher.json").read_text())
    assert teacher["n"] == 10 and teacher["n_correct"] == 10    # the references are correct, scored by extraction
    for variant in VARIANTS:
        metrics = json.loads((tmp_path / "metrics/eval" / f"{variant}.json").read_text())
        assert metrics["n"] == 6 and 0 <= metrics["accuracy"] <= 1
    assert "| SERT+RD |" in (tmp_path / "metrics/report.md").read_text()
