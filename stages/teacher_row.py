"""teacher-row: the report's teacher row, the teacher's outputs for the test questions (when its
source already holds them) scored by the variants' code. Its own stage, apart from ``teacher``,
so that an evaluation knob rescores this row and never reruns the stage that may call an API."""

from __future__ import annotations

from pathlib import Path

import typer

from sert import paths
from sert.io import write_json
from sert.tasks import get_task
from sert.teachers import get_teacher, teacher_row
from stages.common import ParamsOption, load_params, read_examples, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Write metrics/eval/teacher.json, the report's teacher row: the import backend's completions
    or the oracle's references for the test questions, scored like the variants; the openai backend
    sends no request for a test question (and needs no key here), so its row says why it is absent."""
    p = load_params(params)
    task = get_task(p.task)
    row = teacher_row(get_teacher(p.teacher, task), task, read_examples(paths.TEST), p.evaluate)
    write_json(paths.eval_metrics("teacher"), row)
    typer.echo(f"teacher-row: {p.teacher.backend}: " + (f"scored {row['n']} of {row['test_questions']} test questions"
                                                       if row["available"] else row["reason"]))
