"""The task interface: load and split data, verbalize questions, extract and score answers.

A task is an entry in a registry (``sert.tasks.TASKS``), in the spirit of
lm-evaluation-harness. Answer extraction is a named step (``Task.extract_answer``) built
from two small parts a task can override: ``candidates`` (which strings can be an answer)
and the shared answer-prefix rule of Fine-tune-CoT.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from sert.errors import TaskError
from sert.text import split_answer_clause


@dataclass(frozen=True)
class Example:
    """One question as the student sees it, with its gold answer."""

    id: str
    question: str
    answer: str
    choices: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        if self.choices is None:
            del record["choices"]
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "Example":
        return cls(
            id=str(record["id"]),
            question=record["question"],
            answer=record["answer"],
            choices=record.get("choices"),
        )


@dataclass
class TaskConfig:
    """Which task to build and how to split it (the ``task`` section of params)."""

    name: str = "modsum"
    """Registered task name (see ``sert tasks`` or ``sert.tasks.TASKS``)."""
    source: str | None = None
    """Hub dataset id or local path for tasks read from files; synthetic tasks ignore it."""
    seed: int = 0
    """Seed for generating and splitting the data."""
    n_train: int = 400
    """Training questions (synthetic tasks generate exactly this many)."""
    n_test: int = 200
    """Test questions (synthetic tasks generate exactly this many)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Task-specific options, validated by the task (e.g. ``n_terms`` for modsum)."""


class Task:
    """Base class; subclasses set ``name`` and implement ``load``."""

    name: ClassVar[str]
    answer_space: ClassVar[tuple[str, ...] | None] = None
    """The allowed gold answers, or None for open answers (numbers)."""
    candidate_pattern: ClassVar[re.Pattern[str]] = re.compile(r"\S+")

    def __init__(self, config: TaskConfig) -> None:
        self.config = config

    # -- data -----------------------------------------------------------------
    def load(self) -> dict[str, list[Example]]:
        """Return ``{"train": [...], "test": [...]}``."""
        raise NotImplementedError

    def validate(self, example: Example, where: str) -> None:
        """Raise TaskError if the gold answer is outside the task's answer space."""
        if self.answer_space is not None and example.answer not in self.answer_space:
            raise TaskError(
                f"{where}: record {example.id!r} has answer {example.answer!r}, "
                f"expected one of {list(self.answer_space)}"
            )

    # -- answers --------------------------------------------------------------
    def candidates(self, text: str) -> list[str]:
        """Every string in ``text`` that could be an answer, in order of appearance."""
        return self.candidate_pattern.findall(text)

    def extract_answer(self, text: str) -> str | None:
        """Fine-tune-CoT's rule: the first candidate after the answer prefix, else the last one."""
        _, after = split_answer_clause(text)
        if after is not None:
            found = self.candidates(after)
            if found:
                return found[0]
        found = self.candidates(text)
        return found[-1] if found else None

    def is_correct(self, prediction: str | None, example: Example) -> bool:
        return prediction is not None and prediction == example.answer

    # -- synthetic-world hooks (only tasks that generate their own data) -------
    def oracle_rationale(self, example: Example) -> str:
        """A correct step-by-step rationale built from the task's own structure."""
        raise TaskError(f"task {self.name!r} has no oracle teacher; use teacher.backend import or openai")

    def pretraining_corpus(
        self, rng: random.Random, n_documents: int, worked_fraction: float, fact_fraction: float,
        exclude: set[str],
    ) -> list[str]:
        """Documents for pretraining the tiny student (see ``sert.modeling``)."""
        raise TaskError(
            f"task {self.name!r} cannot generate a pretraining corpus; "
            "set student.model to a Hub id or local model directory"
        )
