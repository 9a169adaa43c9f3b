"""What every teacher shares: its params (``TeacherConfig``), its output (``Rationale``), the
``Teacher`` interface the backends implement, the metrics over rationales, and the report's
teacher row (the teacher's test outputs scored like the variants).

Backends live beside this module and import it (see ``sert.teachers`` for the list)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from sert.api import ApiConfig
from sert.config import check
from sert.evaluation import EvalConfig, score
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


def teacher_metrics(rationales: list[Rationale]) -> dict:
    n = len(rationales)
    n_correct = sum(r.correct for r in rationales)
    return {"accuracy": n_correct / n if n else 0.0, "n": n, "n_correct": n_correct}


def kept_rationales(rationales: list[Rationale], only_correct: bool) -> int:
    """How many rationales distillation trains on: the correct ones with ``only_correct``, else all
    (stages/train.py applies the same rule to data/teacher.jsonl)."""
    return sum(r.correct or not only_correct for r in rationales)


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
