"""Tasks. Add a task by writing a module with a ``Task`` subclass decorated with
``@register_task`` (from ``sert.tasks.registry``) and importing it below. Task modules import
``sert.tasks.base`` and ``sert.tasks.registry``, never this package, so no import goes in a
circle (tests/test_import_cycles.py)."""

from __future__ import annotations

from sert.tasks.base import Example, Task, TaskConfig, TaskError, read_examples
from sert.tasks.registry import TASKS, get_task, register_task

from sert.tasks import commonsenseqa, gsm8k, modsum, strategyqa, symbolic  # noqa: E402,F401,I001  (they register themselves)

__all__ = ["TASKS", "Example", "Task", "TaskConfig", "TaskError", "get_task", "read_examples", "register_task"]
