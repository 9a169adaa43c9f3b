"""evaluate: greedy decoding of one variant on the test split, and its metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from sert import paths
from sert.config import VARIANTS
from sert.errors import ParamsError
from sert.io import write_json, write_jsonl
from sert.modeling import load_student
from sert.tasks import get_task
from sert.model_eval import evaluate_model, not_trained_reason
from stages.common import ParamsOption, load_params, read_examples, stage


@stage
def main(variant: str = typer.Argument(..., help=f"One of: {', '.join(VARIANTS)}."),
         params: Path = ParamsOption) -> None:
    """Write data/predictions/<variant>.jsonl and metrics/eval/<variant>.json (the metrics with
    their 95% intervals, sert/evaluation.py).

    The base model is prompted zero-shot (the sampling prompt); trained variants with the
    training prompt they learned. A variant that was not trained (models/<variant>/not_trained.json)
    gets no predictions and ``{"available": false, "reason"}``.
    """
    if variant not in VARIANTS:
        raise ParamsError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    p = load_params(params)
    reason = not_trained_reason(paths.model(variant))
    if reason is not None:  # no model: no predictions, and metrics that say why
        write_jsonl(paths.predictions(variant), [])
        write_json(paths.eval_metrics(variant), {"available": False, "reason": reason})
        typer.echo(f"evaluate {variant}: not trained ({reason})")
        return
    template = p.prompts.zero_shot if variant == "base" else p.prompts.train
    model, tokenizer = load_student(paths.model(variant), p.student.trust_remote_code)
    records, metrics = evaluate_model(model, tokenizer, get_task(p.task), read_examples(paths.TEST), template,
                                      p.evaluate, desc=f"evaluate {variant}")
    write_jsonl(paths.predictions(variant), records)
    write_json(paths.eval_metrics(variant), metrics)
    low, high = metrics["accuracy_ci"]
    typer.echo(f"evaluate {variant}: accuracy {metrics['accuracy']:.3f} [95% {low:.3f}, {high:.3f}], "
               f"reasoning {metrics['reasoning_rate']:.3f}")
