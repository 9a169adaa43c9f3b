"""report: the Table II-style report (metrics/report.md with its figure metrics/report.svg),
the paired comparisons (metrics/compare.json) and the DVC plot data under metrics/plots/. Each
number it reads keeps its one home (metrics/eval/*.json, metrics/filter.json, metrics/teacher.json):
the report copies none of them into a metrics file of its own, so `dvc exp show` lists each once."""

from __future__ import annotations

from pathlib import Path

import typer

from sert.io import read_json, read_jsonl, write_json, write_text
from sert.compare import compare_variants
from sert.published import published_run, published_teacher, published_test_size
from sert.report import (confusion_rows, funnel_rows, render_markdown, render_svg, rounds_markdown, rounds_svg,
                         rows_from_metrics, stack_svg, variant_rows)
from stages.common import METRICS, VARIANTS, ParamsOption, load_params, stage

PLOTS = METRICS / "plots"
PREDICTIONS = Path("data/predictions")


@stage
def main(params: Path = ParamsOption) -> None:
    """Collect metrics/eval/*.json (the variants and the teacher's row), metrics/filter.json,
    metrics/teacher.json and the predictions into the report, its figure, the paired comparisons
    (metrics/compare.json, from the per-question predictions) and the plot data (funnel,
    per-variant metrics, confusion pairs)."""
    p = load_params(params)
    evals = {v: read_json(METRICS / "eval" / f"{v}.json") for v in VARIANTS}
    funnel = read_json(METRICS / "filter.json")
    teacher = read_json(METRICS / "teacher.json")
    # The teacher row; absent in a workspace whose teacher stage predates it (the report then has none).
    teacher_row = METRICS / "eval" / "teacher.json"
    teacher_eval = read_json(teacher_row) if teacher_row.is_file() else None
    published = published_run(p.task.name, p.student.model)
    rounds = rows_from_metrics(read_json(METRICS / "rounds.json"))
    predictions = {v: read_jsonl(PREDICTIONS / f"{v}.jsonl", required=("id", "answer", "prediction", "correct"))
                   for v in VARIANTS}
    comparisons = compare_variants(predictions, source=str(PREDICTIONS / "{}.jsonl"))
    figure = render_svg(evals, published)
    markdown = render_markdown(p.task.name, p.student.model, evals, funnel, teacher, published, figure="report.svg",
                               teacher_eval=teacher_eval, teacher_published=published_teacher(p.task.name),
                               comparisons=comparisons, published_n=published_test_size(p.task.name))
    if len(rounds) > 1:  # iterated SERT: the per-round table, and the curve under the figure
        figure = stack_svg(figure, rounds_svg(rounds))
        markdown += "\n" + rounds_markdown(rounds)
    write_text(METRICS / "report.svg", figure)
    write_text(METRICS / "report.md", markdown)
    write_json(METRICS / "compare.json", comparisons)
    write_json(PLOTS / "funnel.json", funnel_rows(funnel))
    write_json(PLOTS / "variants.json", variant_rows(evals))
    for v, records in predictions.items():
        write_json(PLOTS / "confusion" / f"{v}.json", confusion_rows(records))
    typer.echo(f"report: {METRICS / 'report.md'}, {METRICS / 'report.svg'}, plot data in {PLOTS}")
