"""teacher: one rationale per training question from the configured backend (the stage that may
call an API; the report's teacher row is the ``teacher-row`` stage, so an evaluation knob never
reruns this one)."""

from __future__ import annotations

from pathlib import Path

import typer

from sert import paths
from sert.errors import ApiError
from sert.io import write_json, write_jsonl
from sert.tasks import get_task
from sert.teachers import get_teacher, kept_rationales, teacher_metrics
from stages.common import ParamsOption, load_params, read_examples, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/teacher.jsonl ({id, rationale, answer, correct}) and metrics/teacher.json (with the
    oracle: how many training questions it covered and got wrong; always: how many are kept).

    API backends also record usage and failures in the metrics; the stage fails (after writing
    both files, for inspection) when more than ``teacher.max_failed_share`` of the jobs failed.
    """
    p = load_params(params)
    task = get_task(p.task)
    teacher = get_teacher(p.teacher, task)
    rationales = teacher.rationales(read_examples(paths.TRAIN))
    extra = teacher.extra_metrics()
    # kept: what distillation trains on (teacher.only_correct), so a scarce or erring teacher's
    # effect on the RD variants' data is read here, not recomputed from data/teacher.jsonl.
    metrics = {"backend": p.teacher.backend, **teacher_metrics(rationales), **extra,
               "kept": kept_rationales(rationales, p.teacher.only_correct)}
    write_jsonl(paths.TEACHER, (r.to_json() for r in rationales))
    write_json(paths.TEACHER_METRICS, metrics)
    failed, jobs = extra.get("failed", 0), extra.get("jobs", len(rationales))
    if jobs and failed / jobs > p.teacher.max_failed_share:
        reasons = "; ".join(f"{n} x {reason}" for reason, n in list(extra["failure_reasons"].items())[:3])
        raise ApiError(
            f"teacher: {failed} of {jobs} rationales failed (more than teacher.max_failed_share="
            f"{p.teacher.max_failed_share:g}): {reasons}; rerun to retry them (answered requests are cached)"
        )
    usage = extra.get("usage")
    paid = f" ({usage['requests_sent']} requests sent, {usage['cache_hits']} from the cache)" if usage else ""
    typer.echo(f"teacher: {p.teacher.backend}: {metrics['n_correct']}/{metrics['n']} correct, "
               f"{metrics['kept']} kept -> {paths.TEACHER}{paid}")
