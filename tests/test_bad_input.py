"""Bad input is refused with one clear line, before any work: data files, models, params; and the
code base keeps its safety rules (safetensors, weights_only, no shell=True, no remote code)."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sert.errors import ModelError, ParamsError
from sert.modeling import load_student
from stages.cli import app
from stages.common import load_params

ROOT = Path(__file__).resolve().parents[1]


def params_file(tmp_path, **sections):
    path = tmp_path / "params.yaml"
    import yaml

    path.write_text(yaml.safe_dump(sections))
    return path


@pytest.mark.parametrize("sections, message", [
    ({"sample": {"top_p": 1.5}}, r"sample\.top_p: must be in \(0, 1\], got 1\.5"),
    ({"train": {"epochs": -1}}, r"train\.epochs: must be at least 1, got -1"),
    ({"train": {"epoch": 3}}, r"train\.epoch: unknown key; allowed: epochs, "),
    ({"filter": {"require_correct": "yes"}}, r"filter\.require_correct: expected bool, got 'yes'"),
    ({"task": {"subset_test": 0}}, r"task\.subset_test: must be at least 1 or null"),
    ({"task": {"test_fraction": 1.0}}, r"task\.test_fraction: must be in \(0, 1\)"),
    ({"tsak": {}}, r"tsak: unknown section; allowed: task, "),
    ({"pretrain": {"steps": 40, "warmup_steps": 50}}, r"pretrain\.warmup_steps: must not exceed pretrain\.steps \(40\), got 50"),
    ({"pretrain": {"schedule": "linear"}}, r"pretrain\.schedule: expected 'constant' or 'cosine'"),
])
def test_params_errors_name_the_key(tmp_path, sections, message):
    with pytest.raises(ParamsError, match=message):
        load_params(params_file(tmp_path, **sections))


def test_stage_refuses_bad_data_with_one_line_and_writes_nothing(tmp_path, monkeypatch):
    record = {"answerKey": "A", "id": "same", "question": {"stem": "Where?", "choices": [
        {"label": label, "text": label.lower()} for label in "ABCDE"]}}
    data = tmp_path / "csqa"
    data.mkdir()
    (data / "train_rand_split.jsonl").write_text(json.dumps(record) + "\n")
    (data / "dev_rand_split.jsonl").write_text(json.dumps(record) + "\n")   # the same id in both splits
    params_file(tmp_path, task={"name": "commonsenseqa", "source": str(data)})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["prepare"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: task 'commonsenseqa': duplicate id 'same'"
    assert not (tmp_path / "data").exists()


def test_model_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="Point student.model at a local save_pretrained directory"):
        load_student("gpt2-this-model-does-not-exist")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError):
        load_student(str(tmp_path))


def test_student_without_pad_token_gets_one(tmp_path, tiny_student):
    from sert.modeling import save_student

    model, tokenizer = tiny_student
    saved_pad = tokenizer.pad_token
    tokenizer.pad_token = None
    try:
        save_student(model, tokenizer, tmp_path)
    finally:
        tokenizer.pad_token = saved_pad
    _, loaded = load_student(str(tmp_path))
    assert loaded.pad_token_id is not None
    _, from_path = load_student(tmp_path)  # stages pass sert.paths' Path objects
    assert from_path.pad_token_id == loaded.pad_token_id


SOURCES = [p for d in ("sert", "stages", "benchmarks") for p in (ROOT / d).rglob("*.py")]


@pytest.mark.parametrize("rule, pattern", [
    ("torch.load only with weights_only=True", r"torch\.load\((?![^)]*weights_only=True)"),
    ("no shell=True", r"shell\s*=\s*True"),
    ("no hard-wired trust_remote_code=True", r"trust_remote_code\s*=\s*True"),
    ("no pickle", r"^\s*import pickle|pickle\.load"),
])
def test_safety_rules_hold_in_the_code(rule, pattern):
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in SOURCES
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if re.search(pattern, line)]
    assert not offenders, f"{rule}: {offenders}"
