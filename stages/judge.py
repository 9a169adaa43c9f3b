"""judge: LLM-judge scores (coherence, relevance, logical consistency, completeness) of test outputs.

A DVC stage that always runs: with ``judge.enabled: false`` (the offline default) it sends
nothing and writes ``{"enabled": false}``, so the pipeline never needs a key or a network; with
it on, every variant's test outputs go to the judge model and the metrics hold per-variant means
and score distributions.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sert import paths
from sert.errors import ApiError
from sert.io import read_jsonl, write_json, write_jsonl
from sert.judge import Item, Judge
from sert.config import VARIANTS, JudgeConfig
from stages.common import ParamsOption, load_params, read_examples, stage



def judge_items(cfg: JudgeConfig) -> list[Item]:
    """What the judge scores: each configured variant's test outputs (the first ``max_outputs``)."""
    questions = {ex.id: ex.question for ex in read_examples(paths.TEST)}
    items = []
    for variant in cfg.variants or VARIANTS:
        records = read_jsonl(paths.predictions(variant), required=("id", "output"))
        items += [Item(variant, r["id"], questions[r["id"]], r["output"])
                  for r in records[: cfg.max_outputs] if r["id"] in questions]
    return items


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/judge.jsonl (scores per output) and metrics/judge.json."""
    p = load_params(params)
    cfg = p.judge
    if not cfg.enabled:
        write_jsonl(paths.JUDGED, [])
        write_json(paths.JUDGE_METRICS, {"enabled": False})
        typer.echo("judge: disabled (judge.enabled: false)")
        return
    judge = Judge(cfg)  # checks the key before reading anything
    items = judge_items(cfg)
    records, metrics = judge.run(items)
    write_jsonl(paths.JUDGED, records)
    write_json(paths.JUDGE_METRICS, metrics)
    if items and metrics["failed"] / len(items) > cfg.max_failed_share:
        reasons = "; ".join(f"{n} x {r}" for r, n in list(metrics["failure_reasons"].items())[:3])
        raise ApiError(f"judge: {metrics['failed']} of {len(items)} outputs not scored (more than "
                       f"judge.max_failed_share={cfg.max_failed_share:g}): {reasons}")
    summary = ", ".join(f"{v} {m.get('overall', float('nan')):.2f}" for v, m in metrics["variants"].items())
    typer.echo(f"judge: mean score per variant: {summary}")
