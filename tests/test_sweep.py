"""Seed sweeps (sert/sweep.py, stages/sweep.py): the aggregation on `dvc exp show --json` output as the
installed DVC (3.67) writes it, and one end-to-end two-seed sweep of the tiny project (session fixture
`project`). tests/data/exp_show_sweep.json was captured from real experiments of the tiny pipeline:
train.seed 0 and 1 (`dvc exp run --temp`) and a failed queued one (train.epochs=0, renamed sw-seed2);
its deps/outs and non-eval metrics were dropped to keep it small."""

import copy
import json
import math
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from conftest import ROOT, copy_project, run
from sert.config import VARIANTS
from sert.sweep import SweepError, aggregate, experiment_name, interval, parse_seed, render_markdown, render_svg, select_runs, stage_actions, to_json, varying_params

CAPTURED = json.loads((Path(__file__).parent / "data" / "exp_show_sweep.json").read_text())


def exp_show(drop_failed: bool = True, accuracies: dict[str, list[float]] | None = None) -> list:
    """The captured output; optionally without the failed experiment and with per-seed accuracies
    set (a third seed is a copy of seed 1 renamed sw-seed2 when three values are given)."""
    data = copy.deepcopy(CAPTURED)
    exps = data[1]["experiments"]
    if drop_failed:
        exps[:] = [e for e in exps if e["name"] != "sw-seed2"]
    if accuracies:
        n = len(next(iter(accuracies.values())))
        while len(exps) < n:
            extra = copy.deepcopy(next(e for e in exps if e["name"] == "sw-seed1"))
            name = f"sw-seed{len(exps)}"
            extra["name"] = extra["revs"][0]["name"] = name
            extra["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]["seed"] = len(exps)
            exps.append(extra)
        for exp in exps:
            seed = parse_seed("sw", exp["name"])
            for variant, values in accuracies.items():
                exp["revs"][0]["data"]["metrics"][f"metrics/eval/{variant}.json"]["data"]["accuracy"] = values[seed]
    return data


# -- reading dvc exp show ------------------------------------------------------------------------
def test_captured_layout_is_read_per_seed():
    runs = select_runs(exp_show(), "sw")
    assert [(r.name, r.seed) for r in runs] == [("sw-seed0", 0), ("sw-seed1", 1)]
    assert all(set(r.metrics) == set(VARIANTS) for r in runs)
    assert runs[1].metrics["sert"]["n"] == 8 and runs[1].params["train.seed"] == 1
    assert re.fullmatch(r"[0-9a-f]{40}", runs[0].rev)
    assert varying_params(runs) == {"train.seed": [0, 1]}


def test_failed_experiment_is_a_one_line_error_naming_it():
    with pytest.raises(SweepError, match=r"^experiment sw-seed2 failed \(Experiment run failed\); see `dvc queue "
                                         r"logs sw-seed2`") as err:
        select_runs(exp_show(drop_failed=False), "sw")
    assert "\n" not in str(err.value)


def test_queued_experiment_is_unfinished():
    data = exp_show(drop_failed=False)
    failed = next(e for e in data[1]["experiments"] if e["name"] == "sw-seed2")
    failed["executor"]["state"] = "queued"
    with pytest.raises(SweepError, match="experiment sw-seed2 is queued; wait until `dvc queue status`"):
        select_runs(data, "sw")


def test_no_experiment_for_the_prefix():
    with pytest.raises(SweepError, match=r"^no experiment named other-seed<N> in dvc exp show; run `sert sweep run "
                                         r"--prefix other"):
        select_runs(exp_show(), "other")


def test_other_names_are_not_taken_for_seeds():
    assert parse_seed("sw", "sw-seed12") == 12
    for name in ("sw-seed", "sw-seedq", "sw-seed1x", "xsw-seed1", "sw-seed-1", None):
        assert parse_seed("sw", name) is None
    assert parse_seed("a.b", "axb-seed1") is None  # the prefix is literal, not a pattern


def test_missing_variant_metrics_name_the_experiment_and_file():
    data = exp_show()
    del data[1]["experiments"][1]["revs"][0]["data"]["metrics"]["metrics/eval/sert_rd.json"]
    with pytest.raises(SweepError, match=r"^experiment sw-seed1 has no metrics/eval/sert_rd.json"):
        select_runs(data, "sw")


def test_same_name_on_two_commits_is_an_error():
    data = exp_show()
    data[0]["experiments"] = [copy.deepcopy(data[1]["experiments"][0])]
    data[0]["rev"] = "workspace"
    with pytest.raises(SweepError, match="experiment sw-seed0 exists on two commits"):
        select_runs(data, "sw")


def test_non_numeric_metric_is_an_error():
    runs = select_runs(exp_show(), "sw")
    with pytest.raises(SweepError, match=r"experiment sw-seed0: metrics/eval/base.json has no numeric 'nope'"):
        aggregate(runs, metrics=("nope",))


def test_a_non_seed_change_shows_in_varying_params():
    data = exp_show()
    data[1]["experiments"][1]["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]["lr"] = 0.5
    assert varying_params(select_runs(data, "sw")) == {"train.lr": [0.001, 0.5], "train.seed": [0, 1]}


# -- statistics ---------------------------------------------------------------------------------
def test_aggregate_three_seeds_against_scipy():
    # The SERT+RD numbers: 0.525 with seed 0, 1.000 with seeds 1 and 2.
    runs = select_runs(exp_show(accuracies={"sert_rd": [0.525, 1.0, 1.0], "rd": [0.4, 0.5, 0.9]}), "sw")
    by = {(s.variant, s.metric): s for s in aggregate(runs)}
    s = by["sert_rd", "accuracy"]
    assert s.seeds == (0, 1, 2) and s.values == (0.525, 1.0, 1.0)
    assert s.mean == pytest.approx(2.525 / 3) and (s.min, s.max) == (0.525, 1.0)
    assert s.sd == pytest.approx(math.sqrt(((0.525 - 2.525 / 3) ** 2 + 2 * (1 - 2.525 / 3) ** 2) / 2))
    # Another scipy path to the same interval: the one-sample t-test's confidence interval.
    expected = stats.ttest_1samp([0.525, 1.0, 1.0], 0.0).confidence_interval(0.95)
    assert s.ci == pytest.approx((expected.low, expected.high))
    # By hand: t(0.975, 2) = 4.3027; the interval reaches past 1, and is reported unclipped.
    half = 4.302652729911275 * s.sd / math.sqrt(3)
    assert s.ci == pytest.approx((s.mean - half, s.mean + half)) and s.ci[1] > 1
    assert by["rd", "accuracy"].mean == pytest.approx(0.6)
    base = by["base", "accuracy"]  # every seed scored the same: zero spread, a point interval
    assert base.sd == 0 and base.ci == (base.mean, base.mean)


def test_a_variant_no_run_trained_has_no_summary():
    data = exp_show()
    for exp in data[1]["experiments"]:
        exp["revs"][0]["data"]["metrics"]["metrics/eval/rd.json"]["data"] = {
            "available": False, "reason": "no teacher rationales (teacher.backend: none)"}
    summaries = aggregate(select_runs(data, "sw"), metrics=("accuracy",))
    assert [s.variant for s in summaries] == ["base", "finetune", "sert", "sert_rd"]
    # Trained in one run and not in the other: that mixes two pipelines, and is an error.
    data[1]["experiments"][0]["revs"][0]["data"]["metrics"]["metrics/eval/rd.json"]["data"] = {"accuracy": 0.5}
    with pytest.raises(SweepError, match=r"metrics/eval/rd.json has no numeric 'accuracy'"):
        aggregate(select_runs(data, "sw"), metrics=("accuracy",))


def test_one_seed_has_no_spread():
    assert interval([0.5]) is None
    (s,) = aggregate(select_runs(exp_show(), "sw")[:1], ("sert",), ("accuracy",))
    assert s.sd is None and s.ci is None and s.mean == s.min == s.max


values_lists = st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(values_lists)
def test_interval_contains_the_mean_and_matches_scipy(values):
    low, high = interval(values)
    mean = sum(values) / len(values)
    assert low <= mean + 1e-12 and mean - 1e-12 <= high
    if len(set(values)) > 1 and (high - low) > 1e-9:
        ref = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
        assert (low, high) == pytest.approx(ref, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=6))
def test_more_confidence_is_wider(values):
    low95, high95 = interval(values, 0.95)
    low99, high99 = interval(values, 0.99)
    assert low99 <= low95 + 1e-12 and high95 <= high99 + 1e-12


# -- output -------------------------------------------------------------------------------------
def test_markdown_json_and_svg_carry_the_numbers():
    runs = select_runs(exp_show(accuracies={"sert_rd": [0.525, 1.0, 1.0]}), "sw")
    summaries = aggregate(runs)
    varying = varying_params(runs)
    md = render_markdown("sw", runs, summaries, varying, figure="sweep.svg")
    assert md.startswith("# Seed sweep `sw`: 3 seeds (0, 1, 2)")
    assert "`train.seed` = 0, 1, 2" in md and "2 degrees of freedom" in md
    s = next(x for x in summaries if x.variant == "sert_rd" and x.metric == "accuracy")
    row = next(line for line in md.splitlines() if line.startswith("| SERT+RD | 0.525"))
    assert row == (f"| SERT+RD | 0.525 | 1.000 | 1.000 | {s.mean:.3f} | {s.sd:.3f} | 0.525 | 1.000 | "
                   f"[{s.ci[0]:.3f}, {s.ci[1]:.3f}] |")
    assert [line for line in md.splitlines() if line.startswith("## ")] == [
        "## Acc (`accuracy`)", "## Reasoning (`reasoning_rate`)", "## Fmt (`format_rate`)"]
    data = json.loads(json.dumps(to_json("sw", runs, summaries, varying)))
    entry = next(x for x in data["summaries"] if x["variant"] == "sert_rd" and x["metric"] == "accuracy")
    assert entry["values"] == [0.525, 1.0, 1.0] and entry["ci"] == pytest.approx(list(s.ci))
    assert [e["seed"] for e in data["experiments"]] == [0, 1, 2]

    svg = ET.fromstring(render_svg(summaries))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{ns}circle")) == 3 * len(VARIANTS) * 3  # a dot per seed, variant, metric
    # SERT+RD's accuracy: panel 0, row 4; the interval's upper end is clipped at the axis end (x = 120 + 160).
    xs = sorted(float(c.get("cx")) for c in svg.findall(f"{ns}circle") if 46 + 4 * 26 < float(c.get("cy")) < 46 + 5 * 26
                and float(c.get("cx")) < 120 + 190)
    assert xs == pytest.approx([120 + 0.525 * 160, 280, 280], abs=0.06)
    whisker = [ln for ln in svg.findall(f"{ns}line") if ln.get("stroke") == "black"
               and ln.get("y1") == ln.get("y2") == f"{46 + 4 * 26 + 13:.1f}" and float(ln.get("x1")) < 310]
    assert [(float(w.get("x1")), float(w.get("x2"))) for w in whisker] == [
        pytest.approx((120 + max(0, s.ci[0]) * 160, 280), abs=0.06)]
    caps = [float(ln.get("x1")) for ln in svg.findall(f"{ns}line") if ln.get("stroke") == "black"
            and ln.get("x1") == ln.get("x2") and 46 + 4 * 26 < float(ln.get("y1")) < 46 + 5 * 26
            and float(ln.get("x1")) < 310]
    assert 0 < s.ci[0] and s.ci[1] > 1  # a cap at the lower end only: the upper end is clipped
    assert caps == [pytest.approx(120 + s.ci[0] * 160, abs=0.06)]


# -- what the runs recomputed -------------------------------------------------------------------
REAL_LOG = """\
Stage 'prepare' didn't change, skipping
Stage 'base' didn't change, skipping
Running stage 'train_sert':
> sert train sert
train sert: 12 examples, 2 steps
Running stage 'train@finetune':
> sert train finetune
Stage 'evaluate@base' didn't change, skipping
Stage 'train@rd' is cached - skipping run, checking out outputs
Ran experiment(s): sw-seed1
"""


def test_stage_actions_from_a_dvc_log():
    assert stage_actions(REAL_LOG) == {"ran": ["train_sert", "train@finetune"],
                                       "skipped": ["prepare", "base", "evaluate@base"], "restored": ["train@rd"]}


stage_names = st.from_regex(r"[a-z_]{1,8}(@[a-z_]{1,8})?", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ran", "skipped", "restored"]), stage_names), max_size=12),
       st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c"
                                                                          "\x1c\x1d\x1e\x85\u2028\u2029"),
                        max_size=40), max_size=5))
def test_stage_actions_recovers_every_stage(entries, noise):
    lines = {"ran": "Running stage '{}':", "skipped": "Stage '{}' didn't change, skipping",
             "restored": "Stage '{}' is cached - skipping run, checking out outputs"}
    log = "\n".join([*(lines[kind].format(name) for kind, name in entries),
                     *(n for n in noise if not re.match(r"\s*(Running stage|Stage ')", n))])
    got = stage_actions(log)
    for kind in lines:
        assert got[kind] == list(dict.fromkeys(name for k, name in entries if k == kind))


def test_experiment_names():
    assert experiment_name("sweep", 3) == "sweep-seed3" and parse_seed("sweep", experiment_name("sweep", 3)) == 3


def test_sweep_is_a_sert_group_without_torch():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom stages.cli import app\n"
            "r = CliRunner().invoke(app, ['sweep', '--help'], terminal_width=200)\n"
            "print(r.exit_code, 'torch' in sys.modules, 'scipy' in sys.modules)\nprint(r.output)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    status, listing = out.split("\n", 1)
    assert status == "0 False False"
    assert " run " in listing and " show " in listing


# -- end to end ---------------------------------------------------------------------------------
def test_two_seed_sweep_end_to_end(project, tmp_path):
    """`sert sweep run 0 1` on the tiny project, then `sert sweep show`: seed 1 reruns only what reads
    train.seed, and the aggregate's per-seed values are the experiments' own metrics files. Then the
    one-line errors, a failing seed among them."""
    work = copy_project(project, tmp_path / "sweep")
    start = time.monotonic()
    out = run(["sert", "sweep", "run", "0", "1", "--prefix", "tw"], work).stdout
    elapsed = time.monotonic() - start
    summary = {m.group(1): m.group(2) for m in re.finditer(r"^sweep: (tw-seed\d): (.*)$", out, flags=re.M)}
    assert set(summary) == {"tw-seed0", "tw-seed1"}
    assert summary["tw-seed0"].startswith("ran nothing;")  # seed 0 is the committed run
    ran1 = re.match(r"ran (.*?); from the cache, unchanged: (.*?); from the run-cache", summary["tw-seed1"])
    ran, unchanged = set(ran1.group(1).split(", ")), set(ran1.group(2).split(", "))
    assert {"train_sert", "train@finetune", "train@rd", "train@sert_rd"} <= ran
    assert {"prepare", "base", "sample", "filter", "teacher", "evaluate@base"} <= unchanged
    assert not ran & unchanged
    print(f"two-seed sweep: {elapsed:.0f} s")

    result = run(["sert", "sweep", "show", "--prefix", "tw"], work)
    assert result.stdout.startswith("# Seed sweep `tw`: 2 seeds (0, 1)")
    data = json.loads((work / "metrics/sweep.json").read_text())
    assert data["varying_params"] == {"train.seed": [0, 1]}
    revs = {e["seed"]: e["rev"] for e in data["experiments"]}
    for entry in data["summaries"]:
        expected = [json.loads(run(["git", "show", f"{revs[seed]}:metrics/eval/{entry['variant']}.json"],
                                   work).stdout)[entry["metric"]] for seed in (0, 1)]
        assert entry["values"] == expected and entry["seeds"] == [0, 1]
    base = next(e for e in data["summaries"] if e["variant"] == "base" and e["metric"] == "accuracy")
    assert base["sd"] == 0  # the base model does not read train.seed
    assert (work / "metrics/sweep.md").read_text() == result.stdout
    assert ET.fromstring((work / "metrics/sweep.svg").read_text()).tag.endswith("svg")
    assert "up to date" in run(["dvc", "status"], work).stdout  # the workspace was not touched

    # Resuming runs only the missing seeds: here none.
    resumed = run(["sert", "sweep", "run", "0", "1", "--prefix", "tw", "--skip-existing"], work).stdout
    assert "sweep: tw-seed0 exists, skipped" in resumed and "sweep: tw-seed1 exists, skipped" in resumed
    assert "dvc exp run" not in resumed

    # One-line errors.
    for args, message in [
        (["sweep", "show", "--prefix", "nope"], "error: no experiment named nope-seed<N> in dvc exp show"),
        (["sweep", "run", "2", "--param", "train.sed"], "error: --param train.sed: not a key of params.yaml"),
        (["sweep", "run", "2", "--param", "train.lr"], "error: --param train.lr: params.yaml holds 0.0003 there"),
        (["sweep", "run", "1", "--prefix", "tw"], "error: experiment tw-seed1 already exists"),
    ]:
        bad = run(["sert", *args], work, check=False)
        assert bad.returncode == 1 and bad.stderr.startswith(message) and bad.stderr.count("\n") == 1, bad.stderr
    # A seed whose pipeline fails; the workspace is out of date, which the run warns about first.
    params = work / "params.yaml"
    good = params.read_text()
    params.write_text(good.replace("max_new_tokens: 24", "max_new_tokens: 0"))
    try:
        bad = run(["sert", "sweep", "run", "5", "--prefix", "tw"], work, check=False)
    finally:
        params.write_text(good)
    errors = [line for line in bad.stderr.splitlines() if line.startswith(("warning:", "error:"))]
    assert bad.returncode == 1 and len(errors) == 2, bad.stderr
    assert errors[0].startswith("warning: out of date in the workspace (dvc status): evaluate@base,")
    assert errors[1].startswith("error: seed 5: dvc exp run failed (failed to reproduce '")
    assert "tw-seed5" not in run(["dvc", "exp", "list", "--name-only"], work).stdout
    outside = run(["sert", "sweep", "show"], tmp_path, check=False)
    assert outside.returncode == 1 and "not inside of a DVC repository" in outside.stderr
