"""Teachers: where the rationales for reasoning distillation come from.

A backend turns the prepared training questions into one ``Rationale`` per question. Each backend
is a ``Teacher`` subclass in its own module here, decorated with ``@register_teacher`` (its
``name`` is the ``teacher.backend`` value), and imported below; ``get_teacher`` builds the one the
``teacher`` params name.
  oracle  the task's reference rationale, optionally scarce and imperfect (``sert.teachers.oracle``)
  import  existing teacher completion files (``sert.teachers.imported``)
  openai  two-step zero-shot CoT against any OpenAI-compatible API (``sert.teachers.openai_api``)
  none    no teacher: the distillation variants are not trained (``sert.teachers.none``)
Backends import ``sert.teachers.base`` and ``sert.teachers.registry``, never this package, so no
import goes in a circle (tests/test_import_cycles.py).
"""

from __future__ import annotations

from sert.teachers.base import Rationale, Teacher, TeacherOutput, kept_rationales, teacher_metrics, teacher_row
from sert.teachers.registry import TEACHERS, get_teacher, register_teacher

from sert.teachers import imported, none, openai_api, oracle  # noqa: E402,F401,I001  (they register themselves)

__all__ = ["TEACHERS", "Rationale", "Teacher", "TeacherOutput", "get_teacher",
           "kept_rationales", "register_teacher", "teacher_metrics", "teacher_row"]
