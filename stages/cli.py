"""``sert``: the pipeline's stages as subcommands. ``dvc repro`` runs them in order (see dvc.yaml).

Each stage lives in ``stages/<name>.py`` as a Typer function ``main``. Its module is imported only
when that stage runs: most stages import torch and transformers through the library modules they
run (seconds), and ``sert --help`` or ``sert tasks`` should not wait for them. (Params are not the
reason: ``stages/common.py`` and the schema in ``sert/config.py`` import no torch.) The one-line summaries in ``sert --help`` are read from the
stages' docstrings without importing them.
"""

from __future__ import annotations

# First, before anything can import torch: OpenMP reads its thread settings once, when torch loads
# it (sert/runtime.py says which defaults and why; the user's environment wins).
from sert.runtime import apply_thread_policy, check_thread_policy

apply_thread_policy()

import ast  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import typer  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from sert.errors import SertError  # noqa: E402
from sert.tasks import TASKS  # noqa: E402

STAGES = ("prepare", "base", "sample", "filter", "teacher", "teacher-row", "train-sert", "train", "evaluate", "report", "judge",
          "rounds", "presets")
"""Subcommand names, in pipeline order; each is the module ``stages/<name>.py`` with a ``main``
(``-`` in a name is ``_`` in its module's: ``train-sert`` is stages/train_sert.py)."""


def module_name(name: str) -> str:
    """The module of subcommand ``name`` (in ``stages``)."""
    return name.replace("-", "_")


GROUPS = ("sweep", "cache")
"""Command groups that drive the pipeline rather than being one of its stages: each is the module
``stages/<name>.py`` with a Typer ``app`` of subcommands (``sert sweep run``, ``sert sweep show``)."""


def stage_summary(name: str) -> str:
    """The docstring of ``stages/<name>.py``'s ``main``, parsed, not imported."""
    tree = ast.parse(Path(__file__).with_name(f"{module_name(name)}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            return ast.get_docstring(node) or ""
    raise RuntimeError(f"stages/{name}.py has no main()")


def group_summary(name: str) -> str:
    """The first paragraph of ``stages/<name>.py``'s module docstring, parsed, not imported."""
    tree = ast.parse(Path(__file__).with_name(f"{name}.py").read_text(encoding="utf-8"))
    return " ".join((ast.get_docstring(tree) or "").split("\n\n")[0].split())


def load_group(name: str) -> click.Command:
    """The group's real command (imports its module)."""
    command = typer.main.get_command(importlib.import_module(f"stages.{name}").app)
    command.name = name
    return command


def load_stage(name: str) -> click.Command:
    """The stage's real command (imports its module)."""
    single = typer.Typer(add_completion=False)
    single.command(name)(importlib.import_module(f"stages.{module_name(name)}").main)
    return typer.main.get_command(single)


def check_threads() -> None:
    """Stop with a one-line error on thread settings that make no sense; warn once on wasteful ones."""
    try:
        warning = check_thread_policy()
    except SertError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


class LazyStages(TyperGroup):
    """A command group whose stage commands are placeholders (name and help only) until one is run."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loaded: set[str] = set()
        for name in STAGES:  # in self.commands, so typo suggestions ("did you mean") know them
            doc = stage_summary(name)
            self.commands[name] = click.Command(name, help=doc, short_help=" ".join(doc.split("\n\n")[0].split()))
        for name in GROUPS:
            self.commands[name] = click.Command(name, help=group_summary(name), short_help=group_summary(name))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*STAGES, *(name for name in super().list_commands(ctx) if name not in STAGES)]

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] in (*STAGES, *GROUPS) and not ctx.resilient_parsing:
            check_threads()
        if args and args[0] in STAGES and args[0] not in self.loaded:
            self.commands[args[0]] = load_stage(args[0])
            self.loaded.add(args[0])
        elif args and args[0] in GROUPS and args[0] not in self.loaded:
            self.commands[args[0]] = load_group(args[0])
            self.loaded.add(args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyStages,
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Self-Enhanced Reasoning Training, one DVC stage per command. Run the whole pipeline with `dvc repro`."""
    # (A callback keeps Typer from collapsing an app with one registered command into that command.)


@app.command("tasks")
def list_tasks() -> None:
    """List the registered tasks."""
    for name, cls in sorted(TASKS.items()):
        typer.echo(f"{name}\t{(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}")


if __name__ == "__main__":
    app()
