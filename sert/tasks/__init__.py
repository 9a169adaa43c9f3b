"""Task registry. Add a task by writing a module with a ``Task`` subclass decorated with
``@register_task`` and importing it below."""

from __future__ import annotations

from sert.tasks.base import Example, Task, TaskConfig, TaskError

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


from sert.tasks import commonsenseqa, gsm8k, modsum, strategyqa, symbolic  # noqa: E402,F401  (they register themselves)

__all__ = ["TASKS", "Example", "Task", "TaskConfig", "TaskError", "get_task", "register_task"]
