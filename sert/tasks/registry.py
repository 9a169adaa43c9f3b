"""Task registry: tasks register themselves with ``@register_task`` and ``sert.tasks`` imports
them. This module imports no task, so the task modules import it without a circle."""

from __future__ import annotations

from sert.tasks.base import Task, TaskConfig, TaskError

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def get_task(config: TaskConfig) -> Task:
    """Instantiate the task named in ``config``; unknown names list the registered ones.

    Every entry of ``task.options`` is validated, not only the selected task's: a typo in another
    task's options would otherwise surface only when someone switches to it."""
    if config.name not in TASKS:
        raise TaskError(f"unknown task {config.name!r}; registered tasks: {', '.join(sorted(TASKS))}")
    for name, raw in config.options.items():
        if name not in TASKS:
            raise TaskError(f"task.options.{name}: not a registered task (options are keyed by task name: "
                            f"{', '.join(sorted(TASKS))})")
        TASKS[name].parse_options(raw)
    return TASKS[config.name](config)
