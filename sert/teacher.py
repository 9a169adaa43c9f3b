"""Teachers: where the rationales for reasoning distillation come from.

A backend turns the prepared training questions into one ``Rationale`` per question. Backends
are entries in ``TEACHERS``; each is constructed from the ``teacher`` params and the task.
  oracle  the task's reference rationale (synthetic tasks' own steps, GSM8K's solutions)
  import  existing teacher completion files (``sert.teacher_import``)
  openai  two-step zero-shot CoT against any OpenAI-compatible API (``sert.teacher_openai``)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from sert.api import ApiConfig
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
    """First request seed when ``samples`` > 1 (sample i sends seed + i, so each is its own request)."""
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

    def test_outputs(self, examples: list[Example]) -> dict[str, str] | str:
        """The task's reference rationales, as the oracle teaches them."""
        try:
            return {ex.id: self.task.oracle_rationale(ex) for ex in examples}
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


from sert import teacher_import, teacher_openai  # noqa: E402,F401  (register the ``import`` and ``openai`` backends)
