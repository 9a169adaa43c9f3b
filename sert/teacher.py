"""Teachers: where the rationales for reasoning distillation come from.

A backend turns the prepared training questions into one ``Rationale`` per question. Backends
are entries in ``TEACHERS``; each is constructed from the ``teacher`` params and the task.
  oracle  the task's reference rationale (synthetic tasks' own steps, GSM8K's solutions)
  import  existing teacher completion files (``sert.teacher_import``)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from sert.errors import ParamsError
from sert.tasks import Example, Task


@dataclass
class TeacherConfig:
    """Where teacher rationales come from (the ``teacher`` section of params)."""

    backend: str = "oracle"
    """Registered backend name (``oracle`` for the synthetic tasks)."""
    source: str | None = None
    """Input file for backends that read existing completions."""
    model: str | None = None
    """Teacher model name for API backends."""
    only_correct: bool = True
    """Distil only rationales whose answer is correct (Fine-tune-CoT's rule)."""


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

    def __init__(self, config: TeacherConfig, task: Task) -> None:
        self.config, self.task = config, task
        self.report: dict = {}
        """Backend-specific counts added to ``metrics/teacher.json`` after ``rationales``."""

    def rationales(self, examples: list[Example]) -> list[Rationale]:
        raise NotImplementedError


class OracleTeacher(Teacher):
    """Builds a correct rationale from the task's structure (synthetic tasks only)."""

    def rationales(self, examples: list[Example]) -> list[Rationale]:
        out = []
        for ex in examples:
            text = self.task.oracle_rationale(ex)
            # Scored like any other teacher's text, by the task's own extraction (not by fiat).
            answer = self.task.extract_answer(text)
            out.append(Rationale(ex.id, text, answer, self.task.is_correct(answer, ex)))
        return out


TEACHERS: dict[str, Callable[[TeacherConfig, Task], Teacher]] = {"oracle": OracleTeacher}


def get_teacher(config: TeacherConfig, task: Task) -> Teacher:
    import sert.teacher_import  # noqa: F401  (registers the import backend)

    if config.backend not in TEACHERS:
        raise ParamsError(
            f"teacher.backend: unknown backend {config.backend!r}; available: {', '.join(sorted(TEACHERS))}"
        )
    return TEACHERS[config.backend](config, task)


def teacher_metrics(rationales: list[Rationale]) -> dict:
    n = len(rationales)
    n_correct = sum(r.correct for r in rationales)
    return {"accuracy": n_correct / n if n else 0.0, "n": n, "n_correct": n_correct}
