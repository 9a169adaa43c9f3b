"""What every teacher shares: its params (``TeacherConfig``), its output (``Rationale``), the
``Teacher`` interface the backends implement, the metrics over rationales, and the report's
teacher row (the teacher's test outputs scored like the variants).

Backends live beside this module and import it (see ``sert.teachers`` for the list)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from sert.config import EvalConfig, TeacherConfig
from sert.evaluation import score
from sert.formats import keeps_rationale
from sert.tasks import Example, Task


@dataclass
class Rationale:
    """One teacher answer, as written to ``data/teacher.jsonl``."""

    id: str
    rationale: str
    answer: str | None
    correct: bool

    def to_json(self) -> dict:
        return asdict(self)


class Teacher:
    """Interface: produce one rationale per question."""

    name: ClassVar[str]
    """The ``teacher.backend`` value that selects this backend (``@register_teacher`` reads it)."""

    def __init__(self, config: TeacherConfig, task: Task) -> None:
        self.config, self.task = config, task

    def rationales(self, examples: list[Example]) -> list[Rationale]:
        raise NotImplementedError

    def extra_metrics(self) -> dict:
        """Backend-specific metrics (usage, failures) merged into ``metrics/teacher.json``."""
        return {}

    def test_outputs(self, examples: list[Example]) -> dict[str, str] | str:
        """The teacher's whole output per test question id (rationale and answer, as the paper's
        Table II scores its teacher row), for the report's teacher row; or a one-line reason why
        this backend has none. Never sends a request: API backends have none."""
        return f"the {self.config.backend} backend has no test-split outputs (no requests are sent for test questions)"


def teacher_metrics(rationales: list[Rationale]) -> dict:
    n = len(rationales)
    n_correct = sum(r.correct for r in rationales)
    return {"accuracy": n_correct / n if n else 0.0, "n": n, "n_correct": n_correct}


def kept_rationales(rationales: list[Rationale], only_correct: bool) -> int:
    """How many rationales distillation trains on: the correct ones with ``only_correct``, else all
    (stages/train.py applies the same rule to data/teacher.jsonl)."""
    return sum(keeps_rationale(r.correct, only_correct) for r in rationales)


@dataclass
class TeacherOutput:
    """A teacher's text for one test question, scored without token ids (no student tokenizer)."""

    text: str
    """Rationale and answer as the teacher wrote them."""
    token_ids: None = None
    """Token-based extras (Len/Rep in tokens) are not defined for the teacher."""


def teacher_row(teacher: Teacher, task: Task, examples: list[Example], cfg: EvalConfig) -> dict:
    """The report's teacher row (metrics/eval/teacher.json): the teacher's outputs for the test
    questions (``Teacher.test_outputs``) scored by the variants' code, ``sert.evaluation.score``:
    the variants' keys for the covered test questions, how many test questions there are, and the
    backend; or ``{"available": false, "backend", "reason"}``."""
    backend = teacher.config.backend
    outputs = teacher.test_outputs(examples)
    if isinstance(outputs, str):
        return {"available": False, "backend": backend, "reason": outputs}
    covered = [ex for ex in examples if ex.id in outputs]
    _, metrics = score(task, covered, [TeacherOutput(outputs[ex.id]) for ex in covered], cfg)
    # Fmt is the student's trained format ("So the answer is"); the teacher was never asked for it,
    # and Table II gives the teacher no Fmt either.
    metrics["format_rate"] = metrics["format_rate_ci"] = None
    return {"available": True, "backend": backend, **metrics, "test_questions": len(examples)}
