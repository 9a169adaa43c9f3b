"""Seed sweeps: one DVC experiment per seed, aggregated across seeds.

``sert sweep run`` (stages/sweep.py) runs the pipeline once per seed as a DVC experiment named
``<prefix>-seed<N>``; ``sert sweep show`` reads ``dvc exp show --json``, picks those experiments and
aggregates each variant's test metrics across seeds here: mean, sample standard deviation, min, max
and a 95% Student-t interval for the mean. That interval is about seed-to-seed variation (how far
the mean over seeds could be from the mean over all seeds), not about the test set: the per-run
Wilson intervals of ``metrics/eval/*.json`` cover that. With 2 or 3 seeds it is wide (t(0.975) is
12.7 with one degree of freedom, 4.3 with two) and says little beyond "the seeds disagree".

Everything here is pure: the exp-show JSON comes in as parsed data, the outputs go out as text.
The figure is hand-written SVG like ``sert/report.py``'s (deterministic, no plotting dependency).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from sert.errors import DataError, SertError
from sert.svg import COLORS, document, label

VARIANTS = ("base", "finetune", "sert", "rd", "sert_rd")
"""The evaluated variants, in report order (``metrics/eval/<variant>.json`` of each experiment)."""

METRICS = ("accuracy", "reasoning_rate", "format_rate")
"""The metrics aggregated by default: the rates of metrics/eval/<variant>.json (all in [0, 1])."""


CONFIDENCE = 0.95
"""Coverage of the interval for the mean across seeds."""

# dvc exp show's executor states of an experiment that has no final result (yet).
UNFINISHED = ("queued", "running")


class SweepError(SertError):
    """The experiments of a sweep cannot be aggregated (none found, one failed, one is unfinished)."""


@dataclass(frozen=True)
class SeedRun:
    """One seed's experiment as ``dvc exp show --json`` reports it."""

    name: str
    """Experiment name, ``<prefix>-seed<N>``."""
    seed: int
    """The seed N, read from the name (the sweep set every swept param to it)."""
    rev: str
    """The experiment's git commit."""
    params: dict[str, Any]
    """params.yaml of the experiment, flattened to dotted keys (``train.seed``)."""
    metrics: dict[str, dict[str, Any]]
    """``metrics/eval/<variant>.json`` of the experiment, per variant."""


@dataclass(frozen=True)
class Summary:
    """One variant's metric across seeds."""

    variant: str
    """A key of ``VARIANTS`` (or another evaluated variant)."""
    metric: str
    """A key of metrics/eval/<variant>.json, e.g. ``accuracy``."""
    seeds: tuple[int, ...]
    """The seeds, ascending."""
    values: tuple[float, ...]
    """The metric per seed, in the order of ``seeds``."""
    mean: float
    """Mean over seeds."""
    sd: float | None
    """Sample standard deviation over seeds (n - 1 in the denominator); None for one seed."""
    min: float
    """Lowest value over seeds."""
    max: float
    """Highest value over seeds."""
    ci: tuple[float, float] | None
    """95% Student-t interval for the mean over seeds (mean +- t(0.975, n-1) * sd / sqrt(n)); None
    for one seed. Not clipped to [0, 1]: with few seeds it can reach past both ends."""

    def as_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "metric": self.metric, "n_seeds": len(self.seeds),
                "seeds": list(self.seeds), "values": list(self.values), "mean": self.mean, "sd": self.sd,
                "min": self.min, "max": self.max, "ci": list(self.ci) if self.ci else None,
                "ci_method": f"student-t {CONFIDENCE:.0%} over seeds"}


def experiment_name(prefix: str, seed: int) -> str:
    """The experiment name of one seed of a sweep."""
    return f"{prefix}-seed{seed}"


def check_prefix(prefix: str) -> None:
    """A prefix makes valid DVC experiment (git ref) names: letters, digits, '.', '_', '-'."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", prefix):
        raise SweepError(f"--prefix: {prefix!r} is not a valid experiment name prefix "
                         "(letters, digits, '.', '_', '-'; starting with a letter or digit)")


def parse_seed(prefix: str, name: str | None) -> int | None:
    """The seed N of an experiment named ``<prefix>-seed<N>``, else None."""
    match = re.fullmatch(re.escape(prefix) + r"-seed(\d+)", name or "")
    return int(match.group(1)) if match else None


def flatten(mapping: dict, parent: str = "") -> dict[str, Any]:
    """Nested params as dotted keys: ``{"train": {"seed": 0}}`` -> ``{"train.seed": 0}``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{parent}.{key}" if parent else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def select_runs(exp_show: list[dict], prefix: str, variants: tuple[str, ...] = VARIANTS,
                params_file: str = "params.yaml") -> list[SeedRun]:
    """The sweep's experiments in ``dvc exp show --json`` output, ascending by seed.

    Layout (dvc 3): a list of baseline commits (first the ``workspace`` pseudo-commit), each with
    ``experiments``: a list of ``{"name", "executor", "revs": [{"rev", "name", "data": {"params",
    "metrics", ...}, "error"}]}``; a failed, queued or running experiment has
    ``executor.state`` ``failed`` / ``queued`` / ``running`` (a failed one also a rev ``error``).
    Every error is one line naming the experiment.
    """
    if not isinstance(exp_show, list):
        raise DataError("dvc exp show --json: expected a list of commits")
    found: dict[str, tuple[str, dict]] = {}
    for baseline in exp_show:
        for exp in (baseline or {}).get("experiments") or []:
            name = exp.get("name")
            if parse_seed(prefix, name) is None:
                continue
            if name in found:
                raise SweepError(f"experiment {name} exists on two commits ({found[name][0][:7]} and "
                                 f"{str(baseline.get('rev'))[:7]}); remove the old one (dvc exp remove --rev "
                                 f"{found[name][0][:7]} {name}) or use another --prefix")
            found[name] = (str(baseline.get("rev")), exp)
    if not found:
        raise SweepError(f"no experiment named {prefix}-seed<N> in dvc exp show; run `sert sweep run --prefix "
                         f"{prefix} ...` first (or pass --all-commits for experiments of earlier commits)")
    runs = []
    for name, (_baseline, exp) in found.items():
        state = ((exp.get("executor") or {}).get("state") or "").lower()
        if state in UNFINISHED:
            raise SweepError(f"experiment {name} is {state}; wait until `dvc queue status` shows it done")
        revs = exp.get("revs") or []
        if not revs:
            raise SweepError(f"experiment {name}: dvc exp show lists no commit for it")
        rev = revs[0]  # the experiment's latest commit
        error = rev.get("error")
        if state == "failed" or error:
            message = (error or {}).get("msg") or "Experiment run failed"
            raise SweepError(f"experiment {name} failed ({message}); see `dvc queue logs {name}`, then "
                             f"`dvc exp remove {name}` and run its seed again")
        data = rev.get("data") or {}
        params = ((data.get("params") or {}).get(params_file) or {}).get("data")
        if not isinstance(params, dict):
            raise SweepError(f"experiment {name} has no {params_file} in dvc exp show")
        metrics = {}
        for variant in variants:
            path = f"metrics/eval/{variant}.json"
            entry = (data.get("metrics") or {}).get(path) or {}
            values = entry.get("data")
            if not isinstance(values, dict) or not values:
                reason = (entry.get("error") or {}).get("msg") if isinstance(entry.get("error"), dict) else None
                raise SweepError(f"experiment {name} has no {path}" + (f" ({reason})" if reason else "")
                                 + "; did its pipeline finish? (`dvc exp show` lists what it has)")
            metrics[variant] = values
        runs.append(SeedRun(name=name, seed=parse_seed(prefix, name), rev=str(rev.get("rev")),
                            params=flatten(params), metrics=metrics))
    return sorted(runs, key=lambda r: r.seed)


def varying_params(runs: list[SeedRun]) -> dict[str, list[Any]]:
    """Params whose value differs between the runs, with the value per run (in run order).

    In a clean sweep these are exactly the swept seed params; anything else is reported, since the
    spread would then mix seeds with another change."""
    keys = sorted(set().union(*(r.params for r in runs))) if runs else []
    out = {}
    for key in keys:
        values = [r.params.get(key) for r in runs]
        if any(v != values[0] for v in values[1:]):
            out[key] = values
    return out


def interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student-t interval for the mean of ``values`` (None for fewer than two values)."""
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(n)
    if sem == 0:  # every seed agrees: scipy's t.interval would give nan for a zero scale
        return (mean, mean)
    from scipy import stats  # here, not at import: `sert --help` should not load scipy

    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return (float(low), float(high))


def summarize(variant: str, metric: str, runs: list[SeedRun]) -> Summary:
    """One variant's metric across the runs; a run without that metric is a one-line error."""
    values = []
    for run in runs:
        value = run.metrics[variant].get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SweepError(f"experiment {run.name}: metrics/eval/{variant}.json has no numeric {metric!r}")
        values.append(float(value))
    return Summary(variant=variant, metric=metric, seeds=tuple(r.seed for r in runs), values=tuple(values),
                   mean=statistics.fmean(values), sd=statistics.stdev(values) if len(values) > 1 else None,
                   min=min(values), max=max(values), ci=interval(values))


def aggregate(runs: list[SeedRun], variants: tuple[str, ...] = VARIANTS,
              metrics: tuple[str, ...] = METRICS) -> list[Summary]:
    """Every (metric, variant) summary, metric by metric, variants in the given order; a variant that
    no run trained (its metrics ``{"available": false, "reason"}``) has none."""
    if not runs:
        raise SweepError("no runs to aggregate")
    variants = tuple(v for v in variants if any(run.metrics[v].get("available", True) for run in runs))
    return [summarize(v, m, runs) for m in metrics for v in variants]


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_markdown(prefix: str, runs: list[SeedRun], summaries: list[Summary],
                    varying: dict[str, list[Any]], figure: str | None = None) -> str:
    """metrics/sweep.md: which experiments, what varied, one table per metric."""
    seeds = ", ".join(str(r.seed) for r in runs)
    lines = [f"# Seed sweep `{prefix}`: {len(runs)} seeds ({seeds})", "",
             "Experiments: " + ", ".join(f"`{r.name}` ({r.rev[:7]})" for r in runs) + ".", ""]
    if varying:
        lines.append("Params that differ between them: " + "; ".join(
            f"`{k}` = {', '.join(str(v) for v in vals)}" for k, vals in varying.items()) + ".")
    else:
        lines.append("No param differs between them (every seed ran the same params).")
    n = len(runs)
    lines += ["",
              f"Per variant: the metric of each seed, their mean, sample standard deviation (sd), min, max, and a "
              f"{CONFIDENCE:.0%} Student-t interval for the mean over seeds ({n - 1} degree"
              f"{'s' if n != 2 else ''} of freedom). The interval is about seed-to-seed variation, not test-set size "
              "(the per-run intervals of metrics/eval/*.json are); with 2 or 3 seeds it is wide and can reach past "
              "0 and 1, which only says that the seeds disagree."]
    by_metric: dict[str, list[Summary]] = {}
    for s in summaries:
        by_metric.setdefault(s.metric, []).append(s)
    for metric, rows in by_metric.items():
        lines += ["", f"## {label(metric)} (`{metric}`)", "",
                  "| method | " + " | ".join(f"seed {s}" for s in rows[0].seeds)
                  + " | mean | sd | min | max | 95% interval of the mean |",
                  "|---|" + "---|" * (len(rows[0].seeds) + 5)]
        for s in rows:
            ci = "-" if s.ci is None else f"[{s.ci[0]:.3f}, {s.ci[1]:.3f}]"
            lines.append(f"| {label(s.variant)} | " + " | ".join(_f(v) for v in s.values)
                         + f" | {_f(s.mean)} | {_f(s.sd)} | {_f(s.min)} | {_f(s.max)} | {ci} |")
    if figure:
        lines += ["", f"![Mean over seeds with its interval, one dot per seed]({figure})"]
    return "\n".join(lines) + "\n"


def to_json(prefix: str, runs: list[SeedRun], summaries: list[Summary], varying: dict[str, list[Any]]) -> dict:
    """metrics/sweep.json."""
    return {"prefix": prefix, "confidence": CONFIDENCE,
            "experiments": [{"name": r.name, "seed": r.seed, "rev": r.rev} for r in runs],
            "varying_params": varying, "summaries": [s.as_json() for s in summaries]}


def render_svg(summaries: list[Summary]) -> str:
    """One panel per metric on a 0-1 axis, one row per variant: a dot per seed, the mean as a bar
    with its interval as a black whisker. An interval reaching past 0 or 1 is clipped at the panel
    edge and has no end cap there (the table has its numbers)."""
    metrics = list(dict.fromkeys(s.metric for s in summaries))
    variants = list(dict.fromkeys(s.variant for s in summaries))
    cell = {(s.metric, s.variant): s for s in summaries}
    name_w, panel_w, axis_w, row_h, top = 120, 190, 160, 26, 46
    width = name_w + panel_w * len(metrics) + 10
    height = top + row_h * len(variants) + 40
    out: list[str] = []
    for i, variant in enumerate(variants):
        out.append(f'<text x="{name_w - 8}" y="{top + i * row_h + 17}" text-anchor="end">'
                   f'{escape(label(variant))}</text>')

    def x_of(x0: float, value: float) -> float:
        return x0 + max(0.0, min(1.0, value)) * axis_w

    for j, metric in enumerate(metrics):
        x0 = name_w + j * panel_w
        bottom = top + row_h * len(variants)
        out.append(f'<text x="{x0}" y="18" font-weight="bold">{escape(label(metric))}</text>')
        out.append(f'<text x="{x0}" y="34" fill="#666" font-size="10">0 - 1, mean over seeds</text>')
        for tick in (0.0, 0.5, 1.0):
            tx = x_of(x0, tick)
            out.append(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{bottom}" stroke="#ddd"/>')
            out.append(f'<text x="{tx:.1f}" y="{bottom + 12}" fill="#666" font-size="9" '
                       f'text-anchor="middle">{tick:g}</text>')
        for i, variant in enumerate(variants):
            s = cell.get((metric, variant))
            if s is None:
                continue
            y = top + i * row_h
            mid = y + row_h / 2
            color = COLORS[i % len(COLORS)]
            out.append(f'<rect x="{x0}" y="{y + 7}" width="{x_of(x0, s.mean) - x0:.1f}" height="{row_h - 14}" '
                       f'fill="{color}" fill-opacity="0.35"/>')
            if s.ci is not None:
                lo, hi = x_of(x0, s.ci[0]), x_of(x0, s.ci[1])
                out.append(f'<line x1="{lo:.1f}" y1="{mid:.1f}" x2="{hi:.1f}" y2="{mid:.1f}" stroke="black"/>')
                for x, end in ((lo, s.ci[0]), (hi, s.ci[1])):
                    if not 0 <= end <= 1:  # clipped at the panel edge: no end cap, the interval goes on
                        continue
                    out.append(f'<line x1="{x:.1f}" y1="{mid - 5:.1f}" x2="{x:.1f}" y2="{mid + 5:.1f}" '
                               'stroke="black"/>')
            mx = x_of(x0, s.mean)
            out.append(f'<line x1="{mx:.1f}" y1="{y + 4}" x2="{mx:.1f}" y2="{y + row_h - 4}" stroke="{color}" '
                       'stroke-width="3"/>')
            for k, value in enumerate(s.values):  # seeds spread vertically so that equal values stay visible
                dy = (k - (len(s.values) - 1) / 2) * min(4.0, 12 / max(1, len(s.values)))
                out.append(f'<circle cx="{x_of(x0, value):.1f}" cy="{mid + dy:.1f}" r="2.5" fill="{color}" '
                           'stroke="black" stroke-width="0.5"/>')
            out.append(f'<text x="{x0 + axis_w + 4}" y="{y + 17}" font-size="10">{s.mean:.2f}</text>')
    seeds = summaries[0].seeds if summaries else ()
    out.append(f'<text x="{name_w}" y="{height - 8}" font-size="11">{len(seeds)} seeds: dots = one seed each, '
               f'bar = mean, whisker = {CONFIDENCE:.0%} t-interval of the mean (clipped to 0 - 1).</text>')
    return document(width, height, out)


# -- what the runs recomputed -----------------------------------------------------------------
_STAGE_LINES = (
    ("ran", re.compile(r"^Running stage '([^']+)'")),
    ("skipped", re.compile(r"^Stage '([^']+)' didn't change, skipping")),
    ("restored", re.compile(r"^Stage '([^']+)' is cached - skipping run, checking out outputs")),
)


def stage_actions(log: str) -> dict[str, list[str]]:
    """What ``dvc exp run`` did per stage, from its log: ``ran`` (recomputed), ``skipped`` (unchanged
    against dvc.lock: outputs checked out from the cache) and ``restored`` (found in the run-cache:
    same command, deps and params ran before, outputs checked out). Stages in log order."""
    out: dict[str, list[str]] = {"ran": [], "skipped": [], "restored": []}
    for line in log.splitlines():
        for kind, pattern in _STAGE_LINES:
            match = pattern.match(line.strip())
            if match and match.group(1) not in out[kind]:
                out[kind].append(match.group(1))
    return out
