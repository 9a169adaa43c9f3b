"""prepare: build the task's train and test questions as JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from sert import paths
from sert.errors import TaskError
from sert.io import atomic_path, write_jsonl
from sert.tasks import get_task
from stages.common import ParamsOption, load_params, stage


@stage
def main(params: Path = ParamsOption) -> None:
    """Write data/prepared/{train,test}.jsonl: {"id", "question", "answer", "choices"?} per line."""
    p = load_params(params)
    task = get_task(p.task)
    splits = task.load()
    seen: set[str] = set()
    for split, examples in splits.items():
        if not examples:
            raise TaskError(f"task {task.name!r}: the {split} split is empty")
        for ex in examples:
            task.validate(ex, f"{task.name} {split}")
            if ex.id in seen:
                raise TaskError(f"task {task.name!r}: duplicate id {ex.id!r}")
            seen.add(ex.id)
    with atomic_path(paths.PREPARED, directory=True) as tmp:
        for split, examples in splits.items():
            write_jsonl(tmp / f"{split}.jsonl", (ex.to_json() for ex in examples))
    typer.echo(f"prepare: {task.name}: {len(splits['train'])} train, {len(splits['test'])} test -> {paths.PREPARED}")
