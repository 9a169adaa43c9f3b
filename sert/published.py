"""Published SERT results (Zhang et al., 2025, Table II), for the report's comparison column.

Acc is in percent as printed in the paper; Fmt is a fraction, Len mean whitespace words of the
output, Rep the word-unigram repetition rate (the units that reproduce its teacher row from
Fine-tune-CoT's released completions, see sert/text.py). The paper reports only accuracy for
Finetune, so its other fields are None.
Source: the paper's Table II, reproduced in docs/method.md ("The published numbers").

TEST_SIZES gives the test questions behind each accuracy, so that the report can say which of the
paper's differences can be told apart from noise (sert.compare.paper_comparisons). Four of the 24
accuracies are no count out of those sizes (54.65 and 56.34 of 687; 22.63 and 26.03 of 1,221: the
nearest counts give 54.59, 56.33, 22.60, 26.04), a rounding slip or a typo in the table; the
intervals use the nearest count.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """One cell of Table II."""

    accuracy: float
    """Test accuracy in percent."""
    format_rate: float | None = None
    """Fmt: share of well-formatted outputs."""
    length: float | None = None
    """Len: mean whitespace words per output."""
    repetition: float | None = None
    """Rep: repetition rate."""


P = Published
# (student, method) -> {task: Published}; methods use the pipeline's variant names.
TABLE_II: dict[tuple[str, str], dict[str, Published]] = {
    ("gpt2", "finetune"): {"strategyqa": P(54.00), "commonsenseqa": P(20.80)},
    ("gpt2", "sert"): {"strategyqa": P(54.00, 0.91, 145.33, 0.53), "commonsenseqa": P(20.72, 0.96, 120.80, 0.50)},
    ("gpt2", "sert_rd"): {"strategyqa": P(54.65, 0.99, 116.62, 0.50), "commonsenseqa": P(21.95, 0.97, 114.30, 0.49)},
    ("gpt2", "rd"): {"strategyqa": P(52.69, 0.92, 116.23, 0.52), "commonsenseqa": P(21.87, 0.91, 167.11, 0.61)},
    ("gpt2-medium", "finetune"): {"strategyqa": P(50.22), "commonsenseqa": P(19.82)},
    ("gpt2-medium", "sert"): {"strategyqa": P(55.17, 0.89, 149.11, 0.49),
                              "commonsenseqa": P(23.10, 0.82, 160.26, 0.56)},
    ("gpt2-medium", "sert_rd"): {"strategyqa": P(56.34, 1.00, 103.42, 0.49),
                                 "commonsenseqa": P(25.72, 0.90, 116.34, 0.52)},
    ("gpt2-medium", "rd"): {"strategyqa": P(52.69, 0.85, 181.06, 0.56),
                            "commonsenseqa": P(21.54, 0.66, 257.40, 0.67)},
    ("gpt2-large", "finetune"): {"strategyqa": P(53.57), "commonsenseqa": P(20.88)},
    ("gpt2-large", "sert"): {"strategyqa": P(55.75, 0.94, 63.06, 0.33), "commonsenseqa": P(22.63, 0.99, 77.53, 0.46)},
    ("gpt2-large", "sert_rd"): {"strategyqa": P(57.21, 0.97, 80.28, 0.47),
                                "commonsenseqa": P(26.03, 1.00, 94.18, 0.47)},
    ("gpt2-large", "rd"): {"strategyqa": P(50.22, 0.79, 90.48, 0.51), "commonsenseqa": P(22.93, 0.93, 96.15, 0.51)},
}

TEACHER_ROW: dict[str, Published] = {
    "strategyqa": P(53.45, None, 76.77, 0.36), "commonsenseqa": P(60.07, None, 63.82, 0.31)}
"""Table II's teacher row: text-davinci-002 Zero-shot-CoT (no Fmt)."""

TEST_SIZES: dict[str, int] = {"strategyqa": 687, "commonsenseqa": 1221}
"""Test questions per published task: StrategyQA, Fine-tune-CoT's 70/30 split with seed 0 (1,603 train /
687 test); CommonsenseQA, its dev_rand_split (1,221), the protocol's test split (CSQA's own test labels
are not public).
Source: ../shared/docs/sert-protocol.md, "Datasets and splits"."""

TASK_ALIASES = {"strategyqa": "strategyqa", "strategy_qa": "strategyqa", "commonsenseqa": "commonsenseqa",
                "commonsense_qa": "commonsenseqa", "csqa": "commonsenseqa"}
"""Task names that refer to a published task (the registry may spell them either way)."""


def published_student(model: str) -> str | None:
    """The paper's student for a ``student.model`` value (Hub id with or without its
    ``openai-community/`` owner), or None for anything else (tiny, local directories)."""
    name = model.strip().rstrip("/").lower()
    name = name.removeprefix("openai-community/")
    return name if name in ("gpt2", "gpt2-medium", "gpt2-large") else None


def published_run(task: str, model: str) -> dict[str, Published] | None:
    """Table II numbers per variant for this task and student, or None when the paper has no such run."""
    student = published_student(model)
    task_key = TASK_ALIASES.get(task.lower())
    if student is None or task_key is None:
        return None
    return {method: cells[task_key] for (s, method), cells in TABLE_II.items() if s == student}


def published_test_size(task: str) -> int | None:
    """Test questions behind a published task's accuracies, or None for an unpublished task."""
    key = TASK_ALIASES.get(task.lower())
    return None if key is None else TEST_SIZES[key]


def published_count(accuracy: float, n: int) -> int:
    """Correct answers out of ``n`` nearest to a printed accuracy in percent."""
    return round(accuracy * n / 100)


def published_teacher(task: str) -> Published | None:
    """Table II's teacher row (text-davinci-002 Zero-shot-CoT) for a published task, else None."""
    key = TASK_ALIASES.get(task.lower())
    return None if key is None else TEACHER_ROW[key]
