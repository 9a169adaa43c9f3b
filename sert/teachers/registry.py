"""Teacher registry: backends register themselves with ``@register_teacher`` and ``sert.teachers``
imports them. This module imports no backend, so the backends import it without a circle."""

from __future__ import annotations

from sert.errors import ParamsError
from sert.tasks import Task
from sert.config import TeacherConfig
from sert.teachers.base import Teacher


TEACHERS: dict[str, type[Teacher]] = {}
"""Backend name -> class, filled by ``@register_teacher`` as ``sert.teachers`` imports the backends."""


def register_teacher(cls: type[Teacher]) -> type[Teacher]:
    TEACHERS[cls.name] = cls
    return cls


def get_teacher(config: TeacherConfig, task: Task) -> Teacher:
    if config.backend not in TEACHERS:
        raise ParamsError(
            f"teacher.backend: unknown backend {config.backend!r}; available: {', '.join(sorted(TEACHERS))}"
        )
    return TEACHERS[config.backend](config, task)
