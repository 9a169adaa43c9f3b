"""teacher: one rationale per training question from the configured backend."""

from __future__ import annotations

from pathlib import Path

import typer

from sert.errors import ApiError
from sert.io import write_json, write_jsonl
from sert.tasks import get_task
from sert.teacher import get_teacher, teacher_metrics
from stages.common import METRICS, PREPARED, TEACHER, ParamsOption, load_params, read_examples, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/teacher.jsonl ({id, rationale, answer, correct}) and metrics/teacher.json.

    API backends also record usage and failures in the metrics; the stage fails (after writing
    both files, for inspection) when more than ``teacher.max_failed_share`` of the jobs failed.
    """
    p = load_params(params)
    task = get_task(p.task)
    teacher = get_teacher(p.teacher, task)
    rationales = teacher.rationales(read_examples(PREPARED / "train.jsonl"))
    extra = teacher.extra_metrics()
    metrics = {"backend": p.teacher.backend, **teacher_metrics(rationales), **extra}
    write_jsonl(TEACHER, (r.to_json() for r in rationales))
    write_json(METRICS / "teacher.json", metrics)
    failed, jobs = extra.get("failed", 0), extra.get("jobs", len(rationales))
    if jobs and failed / jobs > p.teacher.max_failed_share:
        reasons = "; ".join(f"{n} x {reason}" for reason, n in list(extra["failure_reasons"].items())[:3])
        raise ApiError(
            f"teacher: {failed} of {jobs} rationales failed (more than teacher.max_failed_share="
            f"{p.teacher.max_failed_share:g}): {reasons}; rerun to retry them (answered requests are cached)"
        )
    typer.echo(f"teacher: {p.teacher.backend}: {metrics['n_correct']}/{metrics['n']} correct -> {TEACHER}")
