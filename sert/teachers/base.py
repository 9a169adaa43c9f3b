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

from sert.api import ApiConfig
from sert.config import check
from sert.errors import ParamsError, TaskError
from sert.tasks import Example, Task


@dataclass
class TeacherConfig(ApiConfig):
    """Where teacher rationales come from (the ``teacher`` section of params)."""

    backend: str = "oracle"
    """Registered backend name (``oracle`` for the synthetic tasks)."""
    source: str | None = None
    """Input file for backends that read existing completions."""
    model: str | None = None
    """Teacher model name for API backends."""
    only_correct: bool = True
    """Distil only rationales whose answer is correct (Fine-tune-CoT's rule)."""
    coverage: float = 1.0
    """Oracle only: share of the training questions the teacher answers, in (0, 1]; which ones is
    drawn with ``seed`` (one permutation, a prefix: the questions covered at 0.1 are covered at 0.25)."""
    error_rate: float = 0.0
    """Oracle only: share of the covered questions whose rationale has one wrong arithmetic step (and
    so a wrong answer), in [0, 1); drawn with ``seed``, scored and filtered by ``only_correct`` like
    any teacher's. Needs a task that can write wrong rationales (modsum)."""
    # -- API backends (``openai``); base_url, endpoint, concurrency, retries and budget are ``ApiConfig``'s --
    system: str | None = None
    """Optional system message (chat) or preamble (completions); None sends none."""
    reasoning_template: str = "Q: {question}\nA: Let's think step by step."
    """Step 1 prompt (zero-shot CoT); must contain ``{question}``."""
    answer_template: str = "{prompt}{rationale}\nTherefore, the answer is"
    """Step 2 prompt; ``{prompt}`` is step 1's prompt, ``{rationale}`` its completion."""
    temperature: float = 0.0
    """Sampling temperature of the reasoning step (Fine-tune-CoT: 0; diverse reasoning: 0.7)."""
    max_tokens: int = 128
    """Reasoning completion length in tokens (Fine-tune-CoT: 128)."""
    answer_max_tokens: int = 32
    """Answer completion length in tokens."""
    samples: int = 1
    """Rationales per question (Fine-tune-CoT's diverse reasoning: several, with temperature > 0)."""
    seed: int = 0
    """API backends: first request seed when ``samples`` > 1 (sample i sends seed + i, so each is its
    own request). Oracle: picks the covered questions, the wrong ones and each wrong step."""
    max_failed_share: float = 0.0
    """The stage fails if more than this share of (question, sample) jobs failed."""
    cache: str = ".sert-cache/teacher.jsonl"
    """Response cache (append-only; gitignored and not a DVC output, so ``dvc repro`` keeps it)."""


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


def check_teacher_config(config: TeacherConfig, task: Task) -> None:
    """Ranges of the oracle's scarcity params, and that only the oracle (on a task that can err)
    takes them: one-line ParamsErrors naming the key."""
    check(0 < config.coverage <= 1, "teacher.coverage", f"must be in (0, 1], got {config.coverage}")
    check(0 <= config.error_rate < 1, "teacher.error_rate", f"must be in [0, 1), got {config.error_rate}")
    for key, value, neutral in (("coverage", config.coverage, 1.0), ("error_rate", config.error_rate, 0.0)):
        check(config.backend == "oracle" or value == neutral, f"teacher.{key}",
              f"only the oracle backend takes it (teacher.backend is {config.backend!r}); set {neutral}")
    check(config.error_rate == 0 or task.can_write_wrong_rationales(), "teacher.error_rate",
          f"task {task.name!r} cannot write wrong rationales (modsum can); set 0.0")


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
    check_teacher_config(config, task)
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
