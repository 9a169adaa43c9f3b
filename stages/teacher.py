"""teacher: one rationale per training question from the configured backend."""

from __future__ import annotations

from pathlib import Path

import typer

from sert.io import write_json, write_jsonl
from sert.tasks import get_task
from sert.teacher import get_teacher, teacher_metrics
from stages.common import METRICS, PREPARED, TEACHER, ParamsOption, load_params, read_examples, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/teacher.jsonl ({id, rationale, answer, correct}) and metrics/teacher.json."""
    p = load_params(params)
    task = get_task(p.task)
    teacher = get_teacher(p.teacher, task)
    rationales = teacher.rationales(read_examples(PREPARED / "train.jsonl"))
    metrics = teacher_metrics(rationales)
    write_jsonl(TEACHER, (r.to_json() for r in rationales))
    write_json(METRICS / "teacher.json", {"backend": p.teacher.backend, **metrics, **teacher.report})
    typer.echo(f"teacher: {p.teacher.backend}: {metrics['n_correct']}/{metrics['n']} correct -> {TEACHER}")
