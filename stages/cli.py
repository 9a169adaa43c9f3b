"""``sert``: the pipeline's stages as subcommands. ``dvc repro`` runs them in order (see dvc.yaml)."""

from __future__ import annotations

import typer

from sert.tasks import TASKS
from stages import base, evaluate, filter, judge, prepare, presets, report, rounds, sample, teacher, train

app = typer.Typer(
    help="Self-Enhanced Reasoning Training, one DVC stage per command. Run the whole pipeline with `dvc repro`.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("prepare")(prepare.main)
app.command("base")(base.main)
app.command("sample")(sample.main)
app.command("filter")(filter.main)
app.command("teacher")(teacher.main)
app.command("train")(train.main)
app.command("evaluate")(evaluate.main)
app.command("report")(report.main)
app.command("presets")(presets.main)
app.command("judge")(judge.main)
app.command("rounds")(rounds.main)


@app.command("tasks")
def list_tasks() -> None:
    """List the registered tasks."""
    for name, cls in sorted(TASKS.items()):
        typer.echo(f"{name}\t{(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}")


if __name__ == "__main__":
    app()
