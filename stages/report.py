"""report: the Table II-style report (metrics/report.md with its figure metrics/report.svg),
the paired comparisons (metrics/compare.json) and the DVC plot data under metrics/plots/. Each
number it reads keeps its one home (metrics/eval/*.json, metrics/filter.json, metrics/teacher.json,
metrics/judge.json):
the report copies none of them into a metrics file of its own, so `dvc exp show` lists each once."""

from __future__ import annotations

from pathlib import Path

import typer

from sert import paths
from sert.io import read_json, read_jsonl, write_json, write_text
from sert.compare import compare_variants
from sert.published import published_run, published_teacher, published_test_size
from sert.report import (confusion_rows, funnel_rows, render_markdown, render_svg, rounds_markdown, rounds_svg,
                         rows_from_metrics, stack_svg, variant_rows)
from sert.config import VARIANTS
from stages.common import ParamsOption, load_params, stage



@stage
def main(params: Path = ParamsOption) -> None:
    """Collect metrics/eval/*.json (the variants and the teacher's row), metrics/filter.json,
    metrics/teacher.json, metrics/judge.json and the predictions into the report, its figure, the paired comparisons
    (metrics/compare.json, from the per-question predictions) and the plot data (funnel,
    per-variant metrics, confusion pairs)."""
    p = load_params(params)
    evals = {v: read_json(paths.eval_metrics(v)) for v in VARIANTS}
    scored = [v for v, m in evals.items() if m.get("available", True)]  # not-trained variants have no numbers
    funnel = read_json(paths.FILTER_METRICS)
    teacher = read_json(paths.TEACHER_METRICS)
    teacher_eval = read_json(paths.eval_metrics("teacher"))  # the teacher row, or why there is none
    published = published_run(p.task.name, p.student.model)
    rounds = rows_from_metrics(read_json(paths.ROUNDS_METRICS))
    predictions = {v: read_jsonl(paths.predictions(v), required=("id", "answer", "prediction", "correct"))
                   for v in scored}
    comparisons = compare_variants(predictions, source=str(paths.PREDICTIONS / "{}.jsonl"))
    figure = render_svg({v: evals[v] for v in scored}, published)
    markdown = render_markdown(p.task.name, p.student.model, evals, funnel, teacher, published, figure="report.svg",
                               teacher_eval=teacher_eval, teacher_published=published_teacher(p.task.name),
                               comparisons=comparisons, published_n=published_test_size(p.task.name),
                               predictions=predictions, judge=read_json(paths.JUDGE_METRICS))
    if len(rounds) > 1:  # iterated SERT: the per-round table, and the curve under the figure
        figure = stack_svg(figure, rounds_svg(rounds))
        markdown += "\n" + rounds_markdown(rounds)
    write_text(paths.FIGURE, figure)
    write_text(paths.REPORT, markdown)
    write_json(paths.COMPARE, comparisons)
    write_json(paths.FUNNEL_PLOT, funnel_rows(funnel))
    write_json(paths.VARIANTS_PLOT, variant_rows({v: evals[v] for v in scored}))
    for v in VARIANTS:
        write_json(paths.confusion(v), confusion_rows(predictions.get(v, [])))
    typer.echo(f"report: {paths.REPORT}, {paths.FIGURE}, plot data in {paths.PLOTS}")
