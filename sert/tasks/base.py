"""The task interface: load and split data, verbalize questions, extract and score answers.

A task is an entry in a registry (``sert.tasks.TASKS``), in the spirit of
lm-evaluation-harness. Answer extraction is a named step (``Task.extract_answer``) built
from two small parts a task can override: ``candidates`` (which strings can be an answer)
and the shared answer-prefix rule of Fine-tune-CoT.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from pydantic import Field

from sert.config import STEP_BY_STEP, Int, TaskConfig, config_class, parse_section
from sert.errors import DataError, TaskError
from sert.io import read_jsonl
from sert.text import split_answer_clause


@dataclass(frozen=True)
class Example:
    """One question as the student sees it, with its gold answer."""

    id: str
    question: str
    answer: str
    choices: list[str] | None = None
    reference: str | None = None
    """A human-written rationale shipped with the dataset (GSM8K solutions, StrategyQA facts,
    generated symbolic tasks); used by the ``oracle`` teacher and the tiny student's corpus."""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "Example":
        return cls(
            id=str(record["id"]),
            question=record["question"],
            answer=record["answer"],
            choices=record.get("choices"),
            reference=record.get("reference"),
        )


def read_examples(path) -> list[Example]:
    """The examples of a prepared split (``data/prepared/<split>.jsonl``); an empty file is an error."""
    records = read_jsonl(path, required=("id", "question", "answer"))
    if not records:
        raise DataError(f"{path}: no records")
    return [Example.from_json(r) for r in records]


@config_class(frozen=True)
class NoOptions:
    """Options of a task that has none (the dataset tasks)."""


@config_class(frozen=True)
class GeneratedSizes:
    """The sizes of a generated task's splits (a dataset task's come from its data)."""

    n_train: Int = Field(350, ge=1)
    """Training questions to generate (Fine-tune-CoT's symbolic tasks: 500 questions, 70/30)."""
    n_test: Int = Field(150, ge=1)
    """Test questions to generate, disjoint from the training ones."""


class Task:
    """Base class; subclasses set ``name`` and implement ``splits`` (and ``Options`` if they take any)."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    """The ``sert.config.config_class`` of ``task.options.<name>``: typed, documented, bounded,
    unknown keys rejected."""
    answer_space: ClassVar[tuple[str, ...] | None] = None
    """The allowed gold answers, or None for open answers (numbers)."""
    candidate_pattern: ClassVar[re.Pattern[str]] = re.compile(r"\S+")

    def __init__(self, config: TaskConfig) -> None:
        self.config = config
        self.options = self.parse_options(config.options.get(self.name))

    @classmethod
    def parse_options(cls, raw: Any) -> Any:
        """``task.options.<name>`` as the task's ``Options``; wrong keys, types and ranges are errors."""
        key = f"task.options.{cls.name}"
        if raw and not dataclasses.fields(cls.Options):
            raise TaskError(f"{key}: task {cls.name!r} takes no options, got {sorted(raw) if isinstance(raw, dict) else raw!r}")
        options = parse_section(cls.Options, raw, key)
        cls.check_options(options, key)
        return options

    @classmethod
    def check_options(cls, options: Any, key: str) -> None:
        """Task-specific checks between the parsed options (none by default; a single option's
        bounds are declared on its field)."""

    # -- data -----------------------------------------------------------------
    def load(self) -> dict[str, list[Example]]:
        """``{"train": [...], "test": [...]}``: the task's splits, cut to ``task.subset_*`` if set."""
        return take_subset(self.splits(), self.config)

    def splits(self) -> dict[str, list[Example]]:
        """The task's whole train and test splits."""
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

    # -- offline hooks: the oracle teacher and the tiny student's corpus -------------------------
    def tokenizer_vocabulary(self) -> tuple[str, ...]:
        """Text the tiny student's tokenizer learns besides its pretraining corpus: the teacher's
        side of distillation, which the corpus never holds. A pretrained student's tokenizer
        knows such words; the tiny one would spell them a byte or two per token, and distillation
        texts would take twice the tokens to train on. Every task's teacher starts with the
        step-by-step opener; tasks whose oracle writes in words of its own add them, each after a
        space as it stands in a distillation text (byte-level BPE tells " We" from "We")."""
        return (STEP_BY_STEP,)

    def oracle_rationale(self, example: Example) -> str:
        """A correct rationale: the dataset's own reference (GSM8K solution, StrategyQA facts,
        the generated steps of a symbolic task). Tasks without one must use another teacher."""
        if example.reference:
            return example.reference
        raise TaskError(
            f"task {self.name!r}: record {example.id!r} has no reference rationale for the oracle teacher; "
            "use teacher.backend import or openai"
        )

    def wrong_rationale(self, example: Example, rng: random.Random) -> str:
        """A wrong rationale in the oracle's words, for ``teacher.error_rate``: one wrong step whose
        error carries through to a wrong final answer, as a real teacher errs. Only tasks whose
        reasoning the code can derive step by step override this (modsum)."""
        raise TaskError(f"task {self.name!r} cannot write a wrong rationale for the oracle teacher")

    @classmethod
    def can_write_wrong_rationales(cls) -> bool:
        """Whether the task overrides ``wrong_rationale`` (checked before any data is read)."""
        return cls.wrong_rationale is not Task.wrong_rationale

    def practice_example(self, rng: random.Random) -> Example | None:
        """A fresh question for the tiny student's corpus (generating tasks only; None otherwise)."""
        return None

    def pretraining_corpus(
        self, rng: random.Random, n_documents: int, worked_fraction: float, fact_fraction: float,
        exclude: set[str], train: list[Example] = (),
    ) -> list[list[tuple[str, bool]]]:
        """Documents for pretraining the tiny student, as (text, trained) segments: a question in
        the zero-shot format, then its answer, worked out with the reference rationale in
        ``worked_fraction`` of them. Generating tasks draw fresh questions that are not in
        ``exclude`` (the train and test splits); dataset tasks can only reuse their ``train``
        split, which makes the tiny student a mechanics check, not a model of latent reasoning.
        ``fact_fraction`` is specific to modsum."""
        if self.practice_example(rng) is None and not train:
            raise TaskError(f"task {self.name!r} has no questions for a pretraining corpus")
        docs = []
        for _ in range(n_documents):
            example = None
            for _attempt in range(100):
                candidate = self.practice_example(rng)
                if candidate is not None and candidate.question not in exclude:
                    example = candidate
                    break
            if example is None:
                if not train:
                    raise TaskError(f"task {self.name!r}: cannot draw questions outside the splits")
                example = train[rng.randrange(len(train))]
            worked = example.reference and rng.random() < worked_fraction
            body = " ".join(example.reference.split()) + " " if worked else ""
            docs.append([(f"Question: {example.question}\nAnswer:", False),
                         (f" {body}So the answer is {example.answer}.", True)])
        return docs


class DatasetTask(Task):
    """A task read from a dataset: subclasses implement ``read_source``, returning either all
    examples in source order (split here: ``task.split_file`` or Fine-tune-CoT's seeded 70/30)
    or the dataset's own ``{"train", "test"}`` splits."""

    def read_source(self) -> list[Example] | dict[str, list[Example]]:
        raise NotImplementedError

    def splits(self) -> dict[str, list[Example]]:
        data = self.read_source()
        cfg = self.config
        if isinstance(data, dict):
            if cfg.split_file:
                raise TaskError(f"task {self.name!r} has its own train/test split; task.split_file does not apply")
            return data
        if cfg.split_file:
            return split_by_file(data, cfg.split_file)
        return split_by_seed(data, cfg.test_fraction, cfg.seed)

    def check_answer(self, example: Example, where: str) -> Example:
        """Validate on load: a gold answer outside the answer space names the file and record."""
        self.validate(example, where)
        return example


# -- shared helpers for dataset tasks ------------------------------------------------------------

def split_by_seed(examples: list[Example], test_fraction: float, seed: int) -> dict[str, list[Example]]:
    """Fine-tune-CoT's split: a NumPy permutation with ``seed``; the first (1 - test_fraction)
    share is train, the rest test, each kept in source order. Reproduces their published
    StrategyQA split (1,603 / 687 with seed 0) index for index (a test checks it)."""
    import numpy as np

    n = len(examples)
    n_test = int(round(n * test_fraction))
    if not 0 < n_test < n:
        raise TaskError(f"task.test_fraction {test_fraction} leaves an empty split of {n} examples")
    order = np.random.RandomState(seed).permutation(n)
    train, test = sorted(order[: n - n_test].tolist()), sorted(order[n - n_test :].tolist())
    return {"train": [examples[i] for i in train], "test": [examples[i] for i in test]}


def split_by_file(examples: list[Example], path: str) -> dict[str, list[Example]]:
    """A split file ``{"train": [indices], "test": [indices]}`` into ``examples`` (source order)."""
    try:
        with open(path, encoding="utf-8") as f:
            split = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(split, dict) or set(split) != {"train", "test"}:
        raise DataError(f'{path}: expected {{"train": [...], "test": [...]}}')
    seen: set[int] = set()
    out = {}
    for name in ("train", "test"):
        indices = split[name]
        bad = [i for i in indices if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(examples)]
        if bad:
            raise DataError(f"{path}: {name} index {bad[0]!r} is outside 0..{len(examples) - 1}")
        overlap = seen.intersection(indices)
        if overlap or len(set(indices)) != len(indices):
            raise DataError(f"{path}: index {min(overlap) if overlap else indices[0]} appears twice")
        seen.update(indices)
        out[name] = [examples[i] for i in indices]
    return out


def take_subset(splits: dict[str, list[Example]], config: TaskConfig) -> dict[str, list[Example]]:
    """Keep the first ``subset_train`` / ``subset_test`` examples of each split (null keeps all).
    Asking for more than a split holds is an error: a stated subset that silently is not one
    would misreport the run."""
    caps = {"train": config.subset_train, "test": config.subset_test}
    out = {}
    for name, examples in splits.items():
        cap = caps.get(name)
        if cap is not None and cap > len(examples):
            raise TaskError(f"task.subset_{name}: {cap} asked for, but the {name} split holds {len(examples)}")
        out[name] = examples if cap is None else examples[:cap]
    return out


def read_json_file(path: str):
    """A JSON file, with one-line errors naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
