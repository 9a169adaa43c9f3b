"""rounds: iterated SERT's per-round test metrics (sert/rounds.py).

Rounds 1..N-1 (``models/sert_rounds/round-<k>``) are evaluated here exactly as ``evaluate@sert``
evaluates ``models/sert`` (greedy, training prompt, ``evaluate`` params); round N *is*
``models/sert``, so its numbers are taken from ``metrics/eval/sert.json`` instead of being
computed twice. With the default ``sert.rounds: 1`` this stage evaluates nothing.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sert import paths
from sert.errors import DataError
from sert.io import read_json, write_json
from sert.tasks import get_task
from stages.common import ParamsOption, load_params, read_examples, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Write metrics/rounds.json (per round: samples, selected, accuracy, reasoning_rate) and the
    plot data metrics/plots/rounds.json."""
    p = load_params(params)
    stats = read_json(paths.ROUNDS / "rounds.json")
    if [s["round"] for s in stats] != list(range(1, len(stats) + 1)):
        raise DataError(f"{paths.ROUNDS / 'rounds.json'}: expected rounds 1..N in order")
    task = get_task(p.task)
    examples = read_examples(paths.TEST)
    rows = []
    for s in stats:
        if s["round"] == len(stats):
            metrics = read_json(paths.eval_metrics("sert"))
        else:
            # Imported here: transformers costs ~4 s of imports, which a one-round run never needs.
            from sert.model_eval import evaluate_model
            from sert.modeling import load_student

            model, tokenizer = load_student(paths.ROUNDS / f"round-{s['round']}", p.student.trust_remote_code)
            metrics = evaluate_model(model, tokenizer, task, examples, p.prompts.train,
                                     p.evaluate, desc=f"evaluate sert round {s['round']}")[1]
        rows.append({**s, "accuracy": metrics["accuracy"], "reasoning_rate": metrics["reasoning_rate"]})
        typer.echo(f"rounds: round {s['round']}: accuracy {metrics['accuracy']:.3f}, "
                   f"reasoning {metrics['reasoning_rate']:.3f}")
    # Metrics keyed by round (DVC metrics are flat mappings); the plot data is a list of rows.
    write_json(paths.ROUNDS_METRICS, {f"round_{r['round']}": {k: v for k, v in r.items() if k != "round"}
                                         for r in rows})
    write_json(paths.ROUNDS_PLOT, rows if len(rows) > 1 else [])  # one round is one point: no per-round chart to draw
