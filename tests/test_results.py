"""Committed runs under results/ never go stale: each holds exactly the files the pipeline writes
today (the tiny pipeline's outputs, by name), and its params load through a stage's validation
(tests/test_presets.py)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = sorted(p.parent for p in (ROOT / "results").glob("*/params.yaml"))
SWEEP = {"sweep.md", "sweep.svg", "sweep.json"}
"""`sert sweep show`'s files: in a run's metrics/ exactly when it ran extra training seeds."""


def files(folder: Path) -> set[str]:
    """The files under ``folder`` by relative path, without DVC's and git's bookkeeping (``.gitignore``)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("run_dir", RUNS, ids=lambda p: p.name)
def test_committed_run_holds_what_the_pipeline_writes(run_dir, project):
    seeds = sorted(p.name for p in run_dir.glob("seed*") if p.is_dir())
    top = {p.name for p in run_dir.iterdir()}
    assert top == {"README.md", "params.yaml", "dvc.lock", "metrics", "predictions", "self_train.jsonl",
                   "teacher.jsonl", *seeds}, f"{run_dir.name}: files results/run.sh does not write"
    written = files(project / "metrics")
    assert files(run_dir / "metrics") == written | (SWEEP if seeds else set())
    assert files(run_dir / "predictions") == files(project / "data" / "predictions")
    for seed in seeds:
        assert files(run_dir / seed / "metrics") == written, f"{run_dir.name}/{seed}"
        assert files(run_dir / seed / "predictions") == files(project / "data" / "predictions")


def test_results_are_found():
    assert RUNS, "no results/*/params.yaml: the test above would check nothing"
