"""Evaluating a model: greedy outputs on the test questions, scored by sert/evaluation.py.

One home for the ``evaluate`` stage (every variant), the ``rounds`` stage (iterated SERT's earlier
rounds) and the studies under ``results/``. The prompt is the caller's: the base model is prompted
zero-shot (``prompts.zero_shot``), a trained variant with the training prompt it learned
(``prompts.train``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from sert import paths
from sert.config import EvalConfig
from sert.errors import ParamsError
from sert.evaluation import score
from sert.formats import fill_prompt
from sert.io import read_json
from sert.modeling import for_inference
from sert.samplers import generate_greedy, resolve_device
from sert.tasks import Example, Task


def evaluate_model(model, tokenizer, task: Task, examples: list[Example], template: str, cfg: EvalConfig,
                   desc: str = "evaluate") -> tuple[list[dict], dict]:
    """Greedy outputs for ``examples`` prompted with ``template`` (in ``cfg.precision``, at most
    ``cfg.max_new_tokens`` each, ``cfg.batch_size`` questions per batch), scored: the per-question
    records and the metrics with their 95% intervals. The model is moved to ``cfg.device``."""
    device = resolve_device(cfg.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParamsError(f"evaluate.device: {cfg.device!r} but CUDA is not available; use auto or cpu")
    model = for_inference(model.to(device), cfg.precision, "evaluate")
    generations = generate_greedy(model, tokenizer, [fill_prompt(template, ex.question) for ex in examples],
                                  cfg.max_new_tokens, cfg.batch_size, desc=desc)
    return score(task, examples, generations, cfg)


def not_trained_reason(model_dir: str | Path) -> str | None:
    """Why the variant at ``model_dir`` was not trained (its ``not_trained.json``, written by
    ``sert.variants.write_not_trained``), or None for a model."""
    marker = Path(model_dir) / paths.NOT_TRAINED
    return str(read_json(marker)["reason"]) if marker.is_file() else None
