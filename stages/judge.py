"""judge: LLM-judge scores (coherence, relevance, logical consistency, completeness) of test outputs.

A DVC stage that always runs: with ``judge.enabled: false`` (the offline default) it sends
nothing and writes ``{"enabled": false}``, so the pipeline never needs a key or a network; with
it on, every variant's test outputs go to the judge model and the metrics hold per-variant means
and score distributions.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sert.errors import ApiError
from sert.io import read_jsonl, write_json, write_jsonl
from sert.judge import Item, Judge
from stages.common import METRICS, PREPARED, VARIANTS, ParamsOption, load_params, read_examples, stage

JUDGED = Path("data/judge.jsonl")


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/judge.jsonl (scores per output) and metrics/judge.json."""
    p = load_params(params)
    cfg = p.judge
    if not cfg.enabled:
        write_jsonl(JUDGED, [])
        write_json(METRICS / "judge.json", {"enabled": False})
        typer.echo("judge: disabled (judge.enabled: false)")
        return
    judge = Judge(cfg)  # checks the key before reading anything
    questions = {ex.id: ex.question for ex in read_examples(PREPARED / "test.jsonl")}
    items = []
    for variant in cfg.variants or VARIANTS:
        records = read_jsonl(Path("data/predictions") / f"{variant}.jsonl", required=("id", "output"))
        items += [Item(variant, r["id"], questions[r["id"]], r["output"])
                  for r in records[: cfg.max_outputs] if r["id"] in questions]
    records, metrics = judge.run(items)
    write_jsonl(JUDGED, records)
    write_json(METRICS / "judge.json", metrics)
    if items and metrics["failed"] / len(items) > cfg.max_failed_share:
        reasons = "; ".join(f"{n} x {r}" for r, n in list(metrics["failure_reasons"].items())[:3])
        raise ApiError(f"judge: {metrics['failed']} of {len(items)} outputs not scored (more than "
                       f"judge.max_failed_share={cfg.max_failed_share:g}): {reasons}")
    summary = ", ".join(f"{v} {m.get('overall', float('nan')):.2f}" for v, m in metrics["variants"].items())
    typer.echo(f"judge: mean score per variant: {summary}")
