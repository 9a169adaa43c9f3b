"""report: a Table II-style results table (metrics/report.md) and metrics/summary.json."""

from __future__ import annotations

from pathlib import Path

import typer

from sert.io import read_json, write_json, write_text
from stages.common import METRICS, VARIANTS, ParamsOption, load_params, stage

LABELS = {"base": "Base (zero-shot)", "finetune": "Finetune", "sert": "SERT", "rd": "RD", "sert_rd": "SERT+RD"}


def render(task: str, model: str, evals: dict[str, dict], funnel: dict, teacher: dict) -> str:
    lines = [
        f"# SERT results: task `{task}`, student `{model}`",
        "",
        "Greedy decoding on the test split. Acc, Fmt and Reasoning are fractions; Len is mean",
        "generated tokens; Rep is the unigram repetition rate (see `sert/evaluation.py`).",
        "",
        "| method | Acc | Fmt | Len | Rep | Reasoning | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, m in evals.items():
        lines.append(f"| {LABELS[variant]} | {m['accuracy']:.3f} | {m['format_rate']:.3f} | {m['length']:.1f} "
                     f"| {m['repetition']:.3f} | {m['reasoning_rate']:.3f} | {m['n']} |")
    lines += ["", "## Self-training data", "",
              "| samples | after pattern | after length | after repetition | after perplexity | questions kept |",
              "|---|---|---|---|---|---|",
              "| " + " | ".join(str(funnel.get(k, "")) for k in ("samples", "after_pattern", "after_length",
                                                                    "after_repetition", "after_perplexity",
                                                                    "selected")) + " |",
              "", "## Teacher", "",
              f"Backend `{teacher.get('backend')}`: {teacher.get('n_correct')}/{teacher.get('n')} correct "
              f"(accuracy {teacher.get('accuracy', 0):.3f}).", ""]
    return "\n".join(lines)


@stage
def main(params: Path = ParamsOption) -> None:
    """Collect metrics/eval/*.json, metrics/filter.json and metrics/teacher.json into the report."""
    p = load_params(params)
    evals = {v: read_json(METRICS / "eval" / f"{v}.json") for v in VARIANTS}
    funnel = read_json(METRICS / "filter.json")
    teacher = read_json(METRICS / "teacher.json")
    write_text(METRICS / "report.md", render(p.task.name, p.student.model, evals, funnel, teacher))
    write_json(METRICS / "summary.json", {"task": p.task.name, "student": p.student.model, "variants": evals,
                                          "filter": funnel, "teacher": teacher})
    typer.echo(f"report: {METRICS / 'report.md'}")
