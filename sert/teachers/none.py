"""The ``none`` teacher: no rationales at all, for a task whose teacher is out of reach (no
released completions, no API). The distillation variants (``rd``, ``sert_rd``) are then not
trained: their stages write why instead of a model (``sert.variants.not_trained``), and the report
names them as such."""

from __future__ import annotations

from sert.tasks import Example
from sert.teachers.base import Rationale, Teacher
from sert.teachers.registry import register_teacher

@register_teacher
class NoTeacher(Teacher):
    """Produces nothing: data/teacher.jsonl stays empty."""

    name = "none"

    def rationales(self, examples: list[Example]) -> list[Rationale]:
        return []

    def test_outputs(self, examples: list[Example]) -> str:
        return "teacher.backend is none: there is no teacher"
