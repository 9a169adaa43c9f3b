"""What every stage shares: the params file and error reporting (artifact paths: ``sert.paths``).

Light on purpose (no torch): the params schema and the checks of its values live in
``sert.config``; this module reads the file (the library never does) and adds the checks that
need the task registry (``check_registries``)."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from sert.config import Params, parse_section
from sert.errors import ParamsError
from sert.tasks import get_task, read_examples  # noqa: F401  (read_examples: re-exported for the stages)
from stages.errors import stage  # noqa: F401  (re-exported: every stage imports it from here)


ParamsOption = typer.Option(Path("params.yaml"), "--params", help="Params file to read (DVC passes params.yaml).")


def load_params(path: Path) -> Params:
    """Read and validate the whole params file (a typo anywhere fails every stage, early)."""
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    return parse_params(raw)


def parse_params(raw: dict) -> Params:
    """Validate a params mapping (a file's, or one with overrides applied)."""
    params = parse_section(Params, raw, "")
    check_registries(params)
    return params


def check_registries(p: Params) -> None:
    """The params rules that need a registry (every other rule is declared in ``sert.config``):
    the task's name and every ``task.options`` entry (``get_task`` reads no data), and that a
    nonzero ``teacher.error_rate`` is asked only of a task that can write wrong rationales."""
    task = get_task(p.task)
    if p.teacher.error_rate and not task.can_write_wrong_rationales():
        raise ParamsError(f"teacher.error_rate: task {task.name!r} cannot write wrong rationales (modsum can); "
                          "set 0.0")


