"""Task registry. Add a task by writing a module with a ``Task`` subclass decorated with
``@register_task`` and importing it below."""

from __future__ import annotations

from sert.tasks.base import Example, Task, TaskConfig, TaskError

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def get_task(config: TaskConfig) -> Task:
    """Instantiate the task named in ``config``; unknown names list the registered ones."""
    if config.name not in TASKS:
        raise TaskError(f"unknown task {config.name!r}; registered tasks: {', '.join(sorted(TASKS))}")
    return TASKS[config.name](config)


from sert.tasks import commonsenseqa, gsm8k, modsum, strategyqa, symbolic  # noqa: E402,F401  (they register themselves)

__all__ = ["TASKS", "Example", "Task", "TaskConfig", "TaskError", "get_task", "register_task"]
