"""Every shipped preset validates and carries the published protocol; files match the table."""

from pathlib import Path

import pytest

from stages.common import load_params
from stages.presets import MODELS, all_presets, render

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "presets").glob("*.yaml"))


def test_six_presets_committed_and_in_sync_with_the_table():
    presets = all_presets()
    assert sorted(p.stem for p in FILES) == sorted(presets) and len(presets) == 6
    for path in FILES:
        assert path.read_text(encoding="utf-8") == render(path.stem, presets[path.stem]), \
            f"{path.name} is stale: run `sert presets`"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_preset_validates_with_the_paper_protocol(path):
    p = load_params(path)
    task, model = path.stem.split("-", 1)
    assert p.task.name == task and p.student.model == model in MODELS
    assert p.task.n_train is None and p.task.n_test is None and p.task.seed == 0
    assert (p.sample.branches, p.sample.samples_per_branch, p.sample.top_k, p.sample.top_p) == (5, 5, 10, 0.95)
    assert (p.filter.min_tokens, p.filter.max_rep2, p.filter.min_perplexity) == (25, 0.2, 5.0)
    assert (p.train.batch_size, p.train.lr, p.train.epochs, p.train.weight_decay) == (8, 3e-4, 20, 0.0)
    assert p.teacher.backend == "openai" and p.teacher.only_correct and p.teacher.endpoint == "completions"
    assert (p.teacher.temperature, p.teacher.max_tokens) == (0.0, 128)   # Fine-tune-CoT's teacher decoding
    assert p.prompts.zero_shot == "Question: {question}\nAnswer:"
    assert "Run: cp presets/" in path.read_text()


def test_default_params_file_validates():
    load_params(ROOT / "params.yaml")
