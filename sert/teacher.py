"""Teachers: where the rationales for reasoning distillation come from.

A backend turns the prepared training questions into one ``Rationale`` per question. Backends
are entries in ``TEACHERS``; each is constructed from the ``teacher`` params and the task.
  oracle  the task's reference rationale (synthetic tasks' own steps, GSM8K's solutions); with
          ``coverage`` < 1 and ``error_rate`` > 0 a scarce, imperfect teacher (``oracle_plan``)
  import  existing teacher completion files (``sert.teacher_import``)
  openai  two-step zero-shot CoT against any OpenAI-compatible API (``sert.teacher_openai``)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sert.config import TeacherConfig  # noqa: F401  (re-exported: the config moved to sert.config)
from sert.errors import ParamsError, TaskError
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


@dataclass(frozen=True)
class OraclePlan:
    """Which questions a scarce, imperfect oracle answers, and which of those it gets wrong."""

    covered: frozenset[int]
    """Indices (into the examples) of the covered questions."""
    wrong: frozenset[int]
    """Indices of the covered questions that get a wrong rationale."""


def oracle_plan(n: int, coverage: float, error_rate: float, seed: int) -> OraclePlan:
    """Cover the first k = round(coverage * n) (at least 1) questions of one seeded permutation, and
    get wrong the questions at the positions j of that order where round((j + 1) * error_rate)
    steps up: round(error_rate * k') of every prefix k', spread evenly over it. Everything depends
    on the position in one permutation of ``n``, so for one seed a question covered (or wrong) at
    one coverage is covered (and wrong) at every higher one: curves over coverage are paired. (The
    wrong sets of two error rates are not nested; an exact share at every coverage was preferred.)"""
    order = random.Random(seed).sample(range(n), n)
    k = max(1, round(coverage * n)) if n else 0
    wrong = [order[j] for j in range(k) if round((j + 1) * error_rate) > round(j * error_rate)]
    return OraclePlan(frozenset(order[:k]), frozenset(wrong))


class OracleTeacher(Teacher):
    """Builds a rationale from the task's structure (synthetic tasks, datasets with references):
    correct, except on ``error_rate`` of the questions, and only for ``coverage`` of them."""

    plan: OraclePlan | None = None
    n_questions: int = 0

    def text(self, example: Example, wrong: bool) -> str:
        if not wrong:
            return self.task.oracle_rationale(example)
        # Per question and seed, so a question wrong at one coverage reads the same at another.
        return self.task.wrong_rationale(example, random.Random(f"{self.config.seed}:{example.id}"))

    def rationales(self, examples: list[Example]) -> list[Rationale]:
        self.plan = oracle_plan(len(examples), self.config.coverage, self.config.error_rate, self.config.seed)
        self.n_questions = len(examples)
        out = []
        for i, ex in enumerate(examples):
            if i not in self.plan.covered:
                continue
            text = self.text(ex, i in self.plan.wrong)
            # Scored like any other teacher's text, by the task's own extraction (not by fiat).
            answer = self.task.extract_answer(text)
            out.append(Rationale(ex.id, text, answer, self.task.is_correct(answer, ex)))
        return out

    def extra_metrics(self) -> dict:
        """How many training questions there were, how many the oracle covered and got wrong."""
        if self.plan is None:
            return {}
        return {"questions": self.n_questions, "covered": len(self.plan.covered), "wrong": len(self.plan.wrong)}

    def test_outputs(self, examples: list[Example]) -> dict[str, str] | str:
        """The oracle's outputs for every test question: the task's reference rationales, wrong on
        ``error_rate`` of them (coverage is about training data; the row measures the teacher)."""
        wrong = oracle_plan(len(examples), 1.0, self.config.error_rate, self.config.seed).wrong
        try:
            return {ex.id: self.text(ex, i in wrong) for i, ex in enumerate(examples)}
        except TaskError as err:
            return f"no reference rationales on the test split ({err})"


TEACHERS: dict[str, Callable[[TeacherConfig, Task], Teacher]] = {"oracle": OracleTeacher}


def get_teacher(config: TeacherConfig, task: Task) -> Teacher:
    if config.backend not in TEACHERS:
        raise ParamsError(
            f"teacher.backend: unknown backend {config.backend!r}; available: {', '.join(sorted(TEACHERS))}"
        )
    return TEACHERS[config.backend](config, task)


def teacher_metrics(rationales: list[Rationale]) -> dict:
    n = len(rationales)
    n_correct = sum(r.correct for r in rationales)
    return {"accuracy": n_correct / n if n else 0.0, "n": n, "n_correct": n_correct}


def kept_rationales(rationales: list[Rationale], only_correct: bool) -> int:
    """How many rationales distillation trains on: the correct ones with ``only_correct``, else all
    (stages/train.py applies the same rule to data/teacher.jsonl)."""
    return sum(r.correct or not only_correct for r in rationales)


from sert import teacher_import, teacher_openai  # noqa: E402,F401  (register the ``import`` and ``openai`` backends)
