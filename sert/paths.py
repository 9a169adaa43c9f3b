"""Where every artifact of the pipeline lives, relative to the project root (DVC runs stages there).

One home for the paths that dvc.yaml names as outs and deps: a stage writes and reads them through
these names, never through string literals, so renaming an artifact is one edit here plus dvc.yaml
(tests/test_dvc_deps.py ties the two together). Pure constants: no params, no I/O.
"""

from __future__ import annotations

from pathlib import Path

# Data (DVC outputs, cached)
PREPARED = Path("data/prepared")
"""The task's prepared splits: ``train.jsonl`` and ``test.jsonl`` (prepare stage)."""
TRAIN = PREPARED / "train.jsonl"
TEST = PREPARED / "test.jsonl"
SAMPLES = Path("data/samples.jsonl")
"""Zero-shot latent reasoning paths of the base model (sample stage)."""
SELF_TRAIN = Path("data/self_train.jsonl")
"""The filtered paths SERT trains on (filter stage)."""
TEACHER = Path("data/teacher.jsonl")
"""The teacher's rationales for the train questions (teacher stage)."""
PREDICTIONS = Path("data/predictions")
"""Greedy test outputs, one ``<variant>.jsonl`` per variant (evaluate stages)."""
JUDGED = Path("data/judge.jsonl")
"""The LLM judge's scores (judge stage)."""

# Models (DVC outputs, cached)
MODELS = Path("models")
BASE_MODEL = MODELS / "base"
ROUNDS = MODELS / "sert_rounds"
"""Iterated SERT: the models of rounds 1..N-1 (``round-<k>``) and ``rounds.json``."""

# Metrics, plots and reports (git-tracked, ``cache: false``)
METRICS = Path("metrics")
BASE_METRICS = METRICS / "base.json"
FILTER_METRICS = METRICS / "filter.json"
"""The filter funnel: samples left after each filter."""
FILTER_EXAMPLES = METRICS / "filter_examples.md"
TEACHER_METRICS = METRICS / "teacher.json"
EVAL = METRICS / "eval"
"""One ``<variant>.json`` of test metrics per variant, and ``teacher.json`` for the teacher row."""
TRAIN_METRICS = METRICS / "train"
ROUNDS_METRICS = METRICS / "rounds.json"
JUDGE_METRICS = METRICS / "judge.json"
REPORT = METRICS / "report.md"
FIGURE = METRICS / "report.svg"
COMPARE = METRICS / "compare.json"
"""Paired comparisons of variants, keyed by pair."""
PLOTS = METRICS / "plots"
"""Plot data for ``dvc plots show`` (loss curves, funnel, per-variant bars, confusion)."""
PRETRAIN_CURVE = PLOTS / "pretrain.csv"
FUNNEL_PLOT = PLOTS / "funnel.json"
VARIANTS_PLOT = PLOTS / "variants.json"
ROUNDS_PLOT = PLOTS / "rounds.json"
CONFUSION = PLOTS / "confusion"

# Work directories (gitignored, outside DVC's outputs so that `dvc repro` does not delete them)
CACHE = Path(".sert-cache")
CHECKPOINTS = CACHE / "checkpoints"
"""Resumable training checkpoints, one directory per training run, removed once its outputs are
written (DVC deletes a stage's outs before running it, and caching optimizer state would be waste)."""
SAMPLE_WORK = CACHE / "sample"
"""Finished sampling shards, keyed by a hash of everything that determines them (sert/shards.py)."""
ROUNDS_WORK = CACHE / "train-sert"
"""Iterated SERT's sampling shards of rounds 2..N (``round-<k>/``), removed once its outputs are written."""


def model(variant: str) -> Path:
    """``models/<variant>``."""
    return MODELS / variant


def predictions(variant: str) -> Path:
    """``data/predictions/<variant>.jsonl``."""
    return PREDICTIONS / f"{variant}.jsonl"


def eval_metrics(variant: str) -> Path:
    """``metrics/eval/<variant>.json``."""
    return EVAL / f"{variant}.json"


def train_metrics(variant: str) -> Path:
    """``metrics/train/<variant>.json``."""
    return TRAIN_METRICS / f"{variant}.json"


def loss_curve(variant: str) -> Path:
    """``metrics/plots/train/<variant>.csv``: loss per optimizer step."""
    return PLOTS / "train" / f"{variant}.csv"


def confusion(variant: str) -> Path:
    """``metrics/plots/confusion/<variant>.json``."""
    return CONFUSION / f"{variant}.json"


NOT_TRAINED = "not_trained.json"
"""File name of the marker a variant that was not trained holds instead of a model."""


def not_trained(variant: str) -> Path:
    """``models/<variant>/not_trained.json``: the one file of a variant that was not trained
    (``{"variant", "reason"}``), in place of the model."""
    return model(variant) / NOT_TRAINED
