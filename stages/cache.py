"""The API response cache: where it is, what it holds, what a run would send (info, plan, clear, export, import).

One cache per repository, shared by the main workspace, ``dvc exp run --temp`` and queued
experiments and other git worktrees (``sert.cache``: ``$SERT_CACHE_DIR``, else
``<git common dir>/sert-cache``). ``sert cache plan`` counts the requests a teacher or judge run
would send with the cache as it is, before any is sent; ``export`` and ``import`` move responses
between machines (JSONL lines, merged: nothing already cached is replaced).

Not a pipeline stage (no ``main``): commands for the person who pays for the requests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
import yaml

from sert import paths
from sert.cache import CACHE_DIR_ENV, ResponseCache, cache_dir, read_export, store_path
from sert.errors import DataError, ParamsError
from stages.common import ParamsOption, parse_params, read_examples
from stages.errors import stage

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])


def _stores(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.sqlite")) if directory.is_dir() else []


def _origin() -> str:
    if os.environ.get(CACHE_DIR_ENV, "").strip():
        return f"${CACHE_DIR_ENV}"
    return "the git common directory of " + ("$DVC_ROOT" if os.environ.get("DVC_ROOT") else "this directory")


@app.command("info")
@stage
def info() -> None:
    """Print the cache directory (and how it was found) and, per store, its entries, requests in
    flight (claims), size and SQLite's integrity check."""
    directory = cache_dir()
    typer.echo(f"cache directory: {directory} (from {_origin()})")
    stores = _stores(directory)
    if not stores:
        typer.echo("no stores yet")
    for path in stores:
        cache = ResponseCache(path)
        try:
            s = cache.info()
        finally:
            cache.close()
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        typer.echo(f"{path.relative_to(directory)}: {s['entries']} responses, {s['claims']} in flight, "
                   f"{size / 1e6:.1f} MB, integrity {s['integrity']}")


@app.command("clear")
@stage
def clear(names: list[str] = typer.Argument(None, help="Stores to delete (e.g. teacher.sqlite); default: all."),
          yes: bool = typer.Option(False, "--yes", help="Delete without asking.")) -> None:
    """Delete response stores (the next run pays for every request again)."""
    directory = cache_dir()
    targets = [store_path(n, directory) for n in names] if names else _stores(directory)
    targets = [t for t in targets if t.exists()]
    if not targets:
        typer.echo(f"nothing to clear in {directory}")
        return
    if not yes and not typer.confirm(f"delete {', '.join(map(str, targets))}?"):
        raise typer.Exit(1)
    for target in targets:
        for part in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            part.unlink(missing_ok=True)
        typer.echo(f"deleted {target}")


@app.command("export")
@stage
def export(name: str = typer.Argument(..., help="Store, e.g. teacher.sqlite."),
           out: Path = typer.Argument(..., help="JSONL file to write ('-': stdout).")) -> None:
    """Write a store's responses as JSONL (``sert cache import`` on another machine merges them)."""
    path = store_path(name)
    if not path.is_file():
        raise DataError(f"{path}: no such store (sert cache info lists them)")
    cache = ResponseCache(path)
    try:
        if str(out) == "-":
            n = cache.export(sys.stdout)
        else:
            tmp = out.with_name(out.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as f:
                n = cache.export(f)
            tmp.replace(out)
    finally:
        cache.close()
    typer.echo(f"exported {n} responses from {path}", err=True)


@app.command("import")
@stage
def import_(name: str = typer.Argument(..., help="Store to merge into, e.g. teacher.sqlite."),
            source: Path = typer.Argument(..., help="JSONL from `sert cache export`."),
            skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                              help="Skip lines that are not records (a line cut short).")) -> None:
    """Merge exported responses into a store; responses it already has are kept."""
    if not source.is_file():
        raise DataError(f"{source}: file not found")
    records, skipped = read_export(source.read_text(encoding="utf-8"), str(source), skip_invalid)
    if skipped:
        typer.echo(f"{source}: skipped {skipped} lines that are not records", err=True)
    cache = ResponseCache(store_path(name))
    try:
        added, present = cache.merge(records)
    finally:
        cache.close()
    typer.echo(f"{store_path(name)}: {added} responses added, {present} already there")


class _Empty:
    """A store that does not exist yet: every request is to be sent."""

    def get(self, key: str) -> None:
        return None


def _open(name: str):
    path = store_path(name)
    return ResponseCache(path) if path.is_file() else _Empty()


def _override(raw: dict, assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise ParamsError(f"--set {assignment!r}: expected KEY=VALUE (e.g. teacher.temperature=0.7)")
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ParamsError(f"{key}: {part} is not a section")
    node[last] = yaml.safe_load(value)


@app.command("plan")
@stage
def plan(params: Path = ParamsOption,
         set_: list[str] = typer.Option([], "--set", "-S", help="Override a param, as `dvc exp run -S` does "
                                        "(KEY=VALUE, repeatable).")) -> None:
    """Dry run: how many requests the teacher and the judge would send with these params and the cache as it is.

    Nothing is sent and no key is needed. An answer request whose rationale is not cached yet is
    counted as new, so the count is an upper bound. Run it in the workspace, after `dvc repro prepare`."""
    from sert.judge import plan as judge_plan
    from sert.tasks import get_task
    from sert.teachers import get_teacher
    from stages.judge import judge_items

    if not params.is_file():
        raise ParamsError(f"{params}: file not found")
    raw = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
    for assignment in set_:
        _override(raw, assignment)
    p = parse_params(raw)
    total = 0
    if p.teacher.backend == "openai":
        if not paths.TRAIN.is_file():
            raise DataError(f"{paths.TRAIN}: not there yet; run `dvc repro prepare` first")
        teacher = get_teacher(p.teacher, get_task(p.task))
        t = teacher.plan(read_examples(paths.TRAIN), _open(p.teacher.api.cache))
        total += t["to_send"]
        typer.echo(f"teacher: {t['jobs']} jobs, {t['requests']} requests, {t['requests'] - t['to_send']} cached, "
                   f"at most {t['to_send']} to send ({store_path(p.teacher.api.cache)})")
    else:
        typer.echo(f"teacher: backend {p.teacher.backend} sends no requests")
    if p.judge.enabled:
        try:
            j = judge_plan(p.judge, judge_items(p.judge), _open(p.judge.api.cache))
        except DataError as err:
            typer.echo(f"judge: cannot count yet ({err}); it sends one request per judged test output")
        else:
            total += j["to_send"]
            typer.echo(f"judge: {j['requests']} requests, {j['requests'] - j['to_send']} cached, "
                       f"at most {j['to_send']} to send ({store_path(p.judge.api.cache)})")
    else:
        typer.echo("judge: disabled (judge.enabled: false)")
    typer.echo(f"total: at most {total} requests to send (plus retries on errors, at most api.max_retries each)")
