"""Seed sweeps: run the pipeline for several seeds as DVC experiments (run), aggregate them across seeds (show).

``sert sweep run 0 1 2 --param train.seed`` runs ``dvc exp run --temp -n <prefix>-seed<N> -S
train.seed=<N>`` once per seed, one after the other. Each run starts from HEAD plus the workspace's
uncommitted changes, in a temporary directory that shares the project's DVC cache: a stage whose
command, deps and params are those of dvc.lock is checked out from the cache ("didn't change,
skipping"), a stage that ran before with the same inputs comes from the run-cache ("is cached"),
and only what depends on the seed is recomputed. Why ``--temp`` and not the queue: it runs in the
foreground with one exit status per seed (no background worker to poll), leaves the workspace
untouched, and on a small machine parallel queue workers would only compete for the same cores.
``sert sweep show`` reads ``dvc exp show --json`` and writes the aggregate (metrics/sweep.md,
metrics/sweep.svg, metrics/sweep.json).

Not a pipeline stage (no ``main``): it drives DVC rather than being driven by it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import typer
import yaml

from sert.errors import ParamsError
from stages.errors import stage
from sert.io import write_json, write_text
from sert.config import VARIANTS
from sert.sweep import METRICS, SweepError, aggregate, check_prefix, experiment_name, render_markdown, render_svg, select_runs, stage_actions, to_json, varying_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])

PrefixOption = typer.Option("sweep", "--prefix", help="Experiments are named <prefix>-seed<N>.")




def dvc(args: list[str]) -> subprocess.CompletedProcess:
    """Run a dvc command quietly; a failure is a one-line SweepError carrying DVC's own error line."""
    try:
        result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise SweepError("dvc: command not found (pip install dvc)") from None
    error = dvc_error(result.stderr)
    if result.returncode != 0 or (error and not result.stdout.strip()):
        raise SweepError(f"dvc {' '.join(args)}: {error or f'exited with {result.returncode}'}")
    return result


def dvc_error(output: str) -> str | None:
    """DVC's first ``ERROR: ...`` line, without the prefix."""
    for line in output.splitlines():
        if line.startswith("ERROR:"):
            return line[len("ERROR:"):].strip()
    return None


def check_seed_params(path: Path, keys: list[str]) -> None:
    """Every swept key names an integer param of the params file (a typo would otherwise run a
    pipeline per seed that ignores the seed)."""
    if not path.is_file():
        raise ParamsError(f"{path}: file not found (run from the project root)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key in keys:
        node = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ParamsError(f"--param {key}: not a key of {path}")
            node = node[part]
        if isinstance(node, bool) or not isinstance(node, int):
            raise ParamsError(f"--param {key}: {path} holds {node!r} there, not an integer seed")


@app.command("run")
@stage
def run(seeds: list[int] = typer.Argument(..., help="Seeds to run, e.g. 0 1 2."),
        param: list[str] = typer.Option(["train.seed"], "--param", "-p",
                                        help="Params key set to the seed; repeat to set several "
                                             "(--param train.seed --param sample.seed)."),
        prefix: str = PrefixOption,
        skip_existing: bool = typer.Option(False, "--skip-existing",
                                           help="Skip seeds whose experiment already exists (resume a sweep)."),
        params: Path = typer.Option(Path("params.yaml"), "--params", help="The params file the seeds are set in.")
        ) -> None:
    """Run the pipeline once per seed as a DVC experiment <prefix>-seed<N> (dvc exp run --temp).

    Run `dvc repro` first: a stage that is out of date in the workspace would be recomputed by every
    seed instead of once."""
    check_prefix(prefix)
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ParamsError(f"seeds: expected distinct non-negative integers, got {' '.join(map(str, seeds))}")
    keys = list(dict.fromkeys(param))
    check_seed_params(params, keys)
    existing = set(dvc(["exp", "list", "--name-only"]).stdout.split())
    clash = [experiment_name(prefix, s) for s in seeds if experiment_name(prefix, s) in existing]
    if clash and not skip_existing:
        raise SweepError(f"experiment {clash[0]} already exists: `dvc exp remove {' '.join(clash)}`, "
                         "another --prefix, or --skip-existing to resume")
    # Experiments start from HEAD + the workspace: what is out of date there, every seed would recompute.
    stale = sorted(json.loads(dvc(["status", "--json"]).stdout or "{}"))
    if stale:
        typer.echo(f"warning: out of date in the workspace (dvc status): {', '.join(stale)}; every seed "
                   "recomputes these (run `dvc repro` first to compute them once)", err=True)
    file_prefix = "" if params == Path("params.yaml") else f"{params}:"
    summary = []
    for seed in seeds:
        name = experiment_name(prefix, seed)
        if name in existing:
            typer.echo(f"sweep: {name} exists, skipped")
            continue
        command = ["dvc", "exp", "run", "--temp", "-n", name]
        for key in keys:
            command += ["-S", f"{file_prefix}{key}={seed}"]
        typer.echo(f"sweep: {' '.join(command)}")
        log = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:  # shown as it comes (a seed runs for minutes), kept for the summary
                typer.echo(line, nl=False)
                log.append(line)
        if proc.returncode != 0:
            raise SweepError(f"seed {seed}: dvc exp run failed ({dvc_error(''.join(log)) or proc.returncode}); "
                             "seeds before it are saved, fix and rerun with --skip-existing")
        actions = stage_actions("".join(log))
        summary.append(f"{name}: ran {', '.join(actions['ran']) or 'nothing'}; from the cache, unchanged: "
                       f"{', '.join(actions['skipped']) or 'none'}; from the run-cache: "
                       f"{', '.join(actions['restored']) or 'none'}")
    for line in summary:
        typer.echo(f"sweep: {line}")
    typer.echo(f"sweep: done; aggregate with `sert sweep show --prefix {prefix}`")


@app.command("show")
@stage
def show(prefix: str = PrefixOption,
         metric: list[str] = typer.Option(list(METRICS), "--metric", "-m",
                                          help="Metric of metrics/eval/<variant>.json to aggregate; repeatable."),
         variant: list[str] = typer.Option(list(VARIANTS), "--variant", help="Variants to aggregate; repeatable."),
         all_commits: bool = typer.Option(False, "--all-commits", "-A",
                                          help="Look for the experiments on every commit, not only HEAD."),
         out: Path = typer.Option(Path("metrics"), "--out", help="Folder for sweep.md, sweep.svg and sweep.json.")
         ) -> None:
    """Aggregate the experiments <prefix>-seed<N> across seeds (mean, sd, min, max, 95% t-interval).

    Per variant and metric; the table goes to stdout and metrics/sweep.md, the figure to
    metrics/sweep.svg, everything to metrics/sweep.json."""
    check_prefix(prefix)
    result = dvc(["exp", "show", "--json", *(["--all-commits"] if all_commits else [])])
    try:
        exp_show = json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise SweepError(f"dvc exp show --json: not JSON ({err.msg})") from None
    runs = select_runs(exp_show, prefix, tuple(variant))
    summaries = aggregate(runs, tuple(variant), tuple(metric))
    varying = varying_params(runs)
    markdown = render_markdown(prefix, runs, summaries, varying, figure="sweep.svg")
    write_text(out / "sweep.md", markdown)
    write_text(out / "sweep.svg", render_svg(summaries))
    write_json(out / "sweep.json", to_json(prefix, runs, summaries, varying))
    typer.echo(markdown, nl=False)
    others = [k for k in varying if not k.endswith("seed")]
    if others:
        typer.echo(f"note: params other than seeds differ between the experiments ({', '.join(others)}); "
                   "the spread mixes seeds with those changes", err=True)
    if len(runs) < 2:
        typer.echo(f"note: one seed only ({runs[0].name}): no spread or interval", err=True)
    typer.echo(f"sweep: {out / 'sweep.md'}, {out / 'sweep.svg'}, {out / 'sweep.json'}", err=True)
