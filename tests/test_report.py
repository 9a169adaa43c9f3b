"""The report: published numbers, the markdown table and figure, the plot data, and the DVC plots
rendered from the tiny pipeline (`dvc plots show` on the session `project`)."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import run

from sert.compare import PAIRS, compare_variants, pair_key, paper_comparisons
from sert.errors import DataError
from sert.io import write_json, write_jsonl
from sert.published import (TABLE_II, TEST_SIZES, published_count, published_run, published_student,
                            published_teacher, published_test_size)
from sert.report import (DOMINANT_SHARE, FUNNEL_STEPS, answer_counts, answers_markdown, confusion_rows,
                         dominant_answer, funnel_rows, majority_class, render_markdown, render_svg, variant_rows)
from sert.stats import compare_paired, newcombe_difference, wilson

VARIANTS = ("base", "finetune", "sert", "rd", "sert_rd")
LABELS = ("Base (zero-shot)", "Finetune", "SERT", "RD", "SERT+RD")


def fake_evals():
    return {v: {"accuracy": 0.1 * i, "format_rate": 1.0, "length": 10.0 * (i + 1), "repetition": 0.05 * i,
                "reasoning_rate": 0.2 * i, "length_tokens": 13.0 * (i + 1), "repetition_tokens": 0.1 * i,
                "n": 8, "n_correct": i} for i, v in enumerate(VARIANTS)}


FUNNEL = {"samples": 72, "after_pattern": 40, "after_length": 30, "after_repetition": 20,
          "after_perplexity": 20, "selected": 10}
TEACHER = {"backend": "oracle", "n": 12, "n_correct": 12, "accuracy": 1.0}


def test_published_entries_match_table_ii():
    assert published_run("strategyqa", "gpt2")["sert"].accuracy == 54.00
    assert published_run("commonsenseqa", "openai-community/gpt2-medium")["sert_rd"].length == 116.34
    large = published_run("strategyqa", "gpt2-large")["rd"]
    assert (large.accuracy, large.format_rate, large.length, large.repetition) == (50.22, 0.79, 90.48, 0.51)
    assert published_run("csqa", "gpt2-large")["finetune"].accuracy == 20.88
    assert published_run("commonsenseqa", "gpt2")["finetune"].format_rate is None  # accuracy only
    assert len(TABLE_II) == 12 and all(set(cells) == {"strategyqa", "commonsenseqa"} for cells in TABLE_II.values())


@pytest.mark.parametrize("task, model", [("modsum", "gpt2"), ("strategyqa", "tiny"),
                                         ("strategyqa", "/models/gpt2"), ("commonsenseqa", "gpt2-xl")])
def test_no_published_run(task, model):
    assert published_run(task, model) is None


def test_published_student_names():
    assert published_student("GPT2") == "gpt2"
    assert published_student("openai-community/gpt2-large") == "gpt2-large"
    assert published_student("distilgpt2") is None


def test_markdown_without_published_run_says_so_in_one_line():
    md = render_markdown("modsum", "tiny", fake_evals(), FUNNEL, TEACHER, None, figure="report.svg")
    assert "Paper" not in md.split("\n\n")[2]  # the table has no paper column
    assert [line for line in md.splitlines() if line.startswith("No published run")] == [
        "No published run for task `modsum` with student `tiny` (the paper reports StrategyQA and "
        "CommonsenseQA with GPT-2 small / medium / large)."]
    assert "![Variants compared: Acc, Fmt, Reasoning, Len, Rep](report.svg)" in md
    assert "| 72 | 40 | 30 | 20 | 20 | 10 |" in md
    for name in LABELS:
        assert f"| {name} | " in md


def test_markdown_with_published_run_has_the_paper_column():
    md = render_markdown("strategyqa", "gpt2", fake_evals(), FUNNEL, TEACHER, published_run("strategyqa", "gpt2"))
    assert ("| method | Acc | Fmt | Len | Rep | Reasoning | n | Len tokens | Rep tokens |"
            " Paper (Acc % / Fmt / Len / Rep) |") in md
    assert "| SERT | 0.200 | 1.000 | 30.0 | 0.100 | 0.400 | 8 | 39.0 | 0.200 | 54.00 / 0.91 / 145.33 / 0.53 |" in md
    assert "| Finetune | 0.100 | 1.000 | 20.0 | 0.050 | 0.200 | 8 | 26.0 | 0.100 | 54.00 |" in md
    assert "| Base (zero-shot) | 0.000 | 1.000 | 10.0 | 0.000 | 0.000 | 8 | 13.0 | 0.000 | - |" in md
    assert "No published run" not in md


TEACHER_EVAL = {"available": True, "backend": "import", "accuracy": 0.56, "format_rate": None, "length": 76.77147,
                "repetition": 0.364636, "reasoning_rate": 1.0, "length_tokens": None, "repetition_tokens": None,
                "n": 687, "n_correct": 385, "test_questions": 687}


def test_teacher_row_beside_the_papers_teacher_row():
    md = render_markdown("strategyqa", "tiny", fake_evals(), FUNNEL, TEACHER, None,
                         teacher_eval=TEACHER_EVAL, teacher_published=published_teacher("strategyqa"))
    assert ("| Teacher (`import`) | 0.560 | - | 76.8 | 0.365 | 1.000 | 687 | - | - "
            "| 53.45 / - / 76.77 / 0.36 |") in md
    assert "| SERT | 0.200 | 1.000 | 30.0 | 0.100 | 0.400 | 8 | 39.0 | 0.200 | - |" in md  # no GPT-2 run: no cell
    assert "Teacher row: the teacher's own outputs for 687 of 687 test questions" in md
    assert published_teacher("csqa").length == 63.82 and published_teacher("modsum") is None
    md = render_markdown("modsum", "tiny", fake_evals(), FUNNEL, TEACHER, None,
                         teacher_eval={"available": False, "backend": "openai", "reason": "no requests for test"})
    assert "No teacher row: no requests for test." in md and "Teacher (" not in md and "Paper" not in md


def test_svg_is_wellformed_deterministic_and_shows_every_variant_and_metric():
    evals = fake_evals()
    svg = render_svg(evals, published_run("strategyqa", "gpt2"))
    assert svg == render_svg(evals, published_run("strategyqa", "gpt2"))
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for name in LABELS + ("Acc", "Fmt", "Reasoning", "Len", "Rep"):
        assert name in texts
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect")][1:]  # after the background
    assert len(bars) == 5 * 5
    # Bars scale with the value: SERT+RD's accuracy bar (0.4) is twice SERT's (0.2), base's is empty.
    acc = [float(b.get("width")) for b in bars[:5]]  # panels in METRICS order, Acc first
    assert acc[0] == 0.0 and acc[4] == pytest.approx(2 * acc[2])
    ticks = [line for line in root.iter("{http://www.w3.org/2000/svg}line") if line.get("stroke") == "black"]
    assert len(ticks) == 4 + 3 * 3  # Acc for 4 methods; Fmt, Len, Rep for 3 (Finetune: Acc only)


def test_plot_rows():
    assert funnel_rows(FUNNEL) == [{"step": f"{i} {name}", "count": FUNNEL[key]}
                                   for i, (key, name) in enumerate(FUNNEL_STEPS, 1)]
    rows = variant_rows(fake_evals())
    assert [r["variant"] for r in rows] == list(LABELS)
    assert set(rows[0]) == {"variant", "accuracy", "format_rate", "reasoning_rate", "length", "repetition"}
    assert confusion_rows([{"answer": "4", "prediction": "7"}, {"answer": "1", "prediction": None}]) == [
        {"actual": "4", "predicted": "7"}, {"actual": "1", "predicted": "none"}]


def test_dvc_plots_show_renders_every_plot_and_variant(project, tmp_path):
    out = tmp_path / "plots"
    run(["dvc", "plots", "show", "-o", str(out)], project)
    html = (out / "index.html").read_text()
    assert (out / "static" / "workspace_metrics_report.svg").read_text() == (project / "metrics/report.svg").read_text()
    data = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)["data"]
    assert {"metrics/report.svg", "filter_funnel", "accuracy", "format_rate", "reasoning_rate", "length",
            "repetition", "confusion"} <= set(data)  # other plots (training curves) may sit beside them
    funnel = json.loads((project / "metrics/filter.json").read_text())
    assert [r["count"] for r in data["filter_funnel"][0]["content"]["data"]["values"]] == [
        funnel[k] for k, _ in FUNNEL_STEPS]
    for name in ("accuracy", "format_rate", "reasoning_rate", "length", "repetition"):
        assert [r["variant"] for r in data[name][0]["content"]["data"]["values"]] == list(LABELS)
        assert data[name][0]["content"]["encoding"]["y"]["sort"] is None  # drawn in that order, not A-Z
    # Training loss: a colour per file, in dvc.yaml's (the report's) order, a dash per revision.
    loss = data["Training loss per step"][0]["content"]
    assert loss["encoding"]["color"] == {"field": "series", "type": "nominal", "sort": None, "title": "file"}
    assert loss["encoding"]["strokeDash"]["field"] == "rev"
    files = list(dict.fromkeys(r["filename"] for r in loss["data"]["values"]))
    assert files == ["finetune.csv", "sert.csv", "rd.csv", "sert_rd.csv"]
    assert data["Iterated SERT per round"] == []  # sert.rounds: 1, one point: no chart
    confusion = data["confusion"][0]["content"]["data"]["values"]
    assert sorted({r["filename"] for r in confusion}) == sorted(f"{v}.json" for v in VARIANTS)
    assert len(confusion) == 5 * 8  # every test question of every variant
    for v in VARIANTS:  # the HTML holds the same data
        assert f'"{v}.json"' in html
    for name in LABELS:
        assert json.dumps(name) in html
    md = (project / "metrics/report.md").read_text()
    assert "![Variants compared: Acc, Fmt, Reasoning, Len, Rep](report.svg)" in md
    assert "No published run for task `modsum` with student `tiny`" in md


# -- intervals, paired comparisons and the paper's differences --------------------------------------
def with_intervals(evals):
    """fake_evals with intervals beside the compared metrics, as sert.evaluation.score writes them."""
    out = {}
    for v, m in evals.items():
        m = dict(m)
        for key in ("accuracy", "format_rate", "reasoning_rate"):
            m[f"{key}_ci"] = [max(0.0, round(m[key] - 0.1, 6)), min(1.0, round(m[key] + 0.1, 6))]
        m["length_ci"] = [m["length"] - 2.5, m["length"] + 2.5]
        m["repetition_ci"] = [m["repetition"], round(m["repetition"] + 0.02, 6)]
        out[v] = m
    return out


def table(md: str) -> list[str]:
    return [line for line in md.split("\n\n")[2].splitlines() if line.startswith("| ") and "---" not in line]


def test_table_cells_carry_their_intervals():
    md = render_markdown("strategyqa", "gpt2", with_intervals(fake_evals()), FUNNEL, TEACHER,
                         published_run("strategyqa", "gpt2"))
    assert ("| SERT | 0.200 [0.100, 0.300] | 1.000 [0.900, 1.000] | 30.0 [27.5, 32.5] | 0.100 [0.100, 0.120] "
            "| 0.400 [0.300, 0.500] | 8 | 39.0 | 0.200 | 54.00 / 0.91 / 145.33 / 0.53 |") in md
    assert "In brackets, 95% intervals: Wilson for Acc, Fmt and Reasoning, a percentile bootstrap" in md
    teacher = {**TEACHER_EVAL, "accuracy_ci": [0.522, 0.597], "format_rate_ci": None, "length_ci": [74.0, 79.6],
               "repetition_ci": [0.355, 0.374], "reasoning_rate_ci": [0.994, 1.0]}
    md = render_markdown("strategyqa", "tiny", with_intervals(fake_evals()), FUNNEL, TEACHER, None,
                         teacher_eval=teacher)
    assert ("| Teacher (`import`) | 0.560 [0.522, 0.597] | - | 76.8 [74.0, 79.6] | 0.365 [0.355, 0.374] "
            "| 1.000 [0.994, 1.000] | 687 | - | - |") in md


def test_metrics_without_intervals_render_without_brackets():
    """Metrics without intervals (no *_ci keys: one test question) make a report without brackets."""
    md = render_markdown("modsum", "tiny", fake_evals(), FUNNEL, TEACHER, None, teacher_eval=TEACHER_EVAL)
    rows = table(md)
    assert len(rows) == 1 + 5 + 1 and not any("[" in row for row in rows)
    root = ET.fromstring(render_svg(fake_evals()))
    assert not list(root.iter("{http://www.w3.org/2000/svg}path"))
    assert not any("Error bars" in (t.text or "") for t in root.iter("{http://www.w3.org/2000/svg}text"))


def test_svg_draws_each_interval_as_an_error_bar():
    evals = with_intervals(fake_evals())
    root = ET.fromstring(render_svg(evals, published_run("strategyqa", "gpt2")))
    bars = [p.get("d") for p in root.iter("{http://www.w3.org/2000/svg}path")]
    assert len(bars) == 5 * 5  # every variant in every panel
    # SERT's accuracy (third row of the Acc panel, x0 = 120, 110 px for 0-1): 0.1 to 0.3 at the row's middle
    assert bars[2].startswith("M131.0 101H153.0M131.0 97V105M153.0 97V105")
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any(t.startswith("Error bars: 95% intervals") for t in texts) and any(t.startswith("Black ticks") for t in texts)
    # Without the paper's longer Len (145 words), Len is scaled to the longest interval end (52.5 words),
    # so every error bar stays in its panel (x0 = 120 + 3 * 170, 110 px wide) and the longest ends at its edge.
    ours = [p.get("d") for p in ET.fromstring(render_svg(evals)).iter("{http://www.w3.org/2000/svg}path")]
    assert max(float(d.split("H")[1].split("M")[0]) for d in ours[15:20]) == pytest.approx(120 + 3 * 170 + 110)


def fake_predictions(n=40):
    """Per-question records for the five variants on the same n questions (deterministic patterns)."""
    patterns = {"base": lambda i: i % 5 == 0, "finetune": lambda i: i % 4 == 0, "sert": lambda i: i % 2 == 0,
                "rd": lambda i: i % 3 != 0, "sert_rd": lambda i: i % 3 != 0 or i % 7 == 0}
    return {v: [{"id": f"q{i}", "answer": "1", "prediction": "1" if f(i) else "2", "correct": bool(f(i))}
                for i in range(n)] for v, f in patterns.items()}


def test_compare_json_schema_order_and_values():
    predictions = fake_predictions()
    comparisons = compare_variants(predictions)
    assert [(c["a"], c["b"]) for c in comparisons.values()] == list(PAIRS) == [
        ("sert", "base"), ("sert_rd", "rd"), ("rd", "finetune"), ("sert_rd", "sert")]
    assert list(comparisons) == ["sert_vs_base", "sert_rd_vs_rd", "rd_vs_finetune", "sert_rd_vs_sert"]
    for key, c in comparisons.items():
        assert key == pair_key(c["a"], c["b"])
        assert set(c) == {"a", "b", "metric", "difference", "ci", "p_value", "test", "n", "a_only", "b_only"}
        assert c["metric"] == "accuracy" and "McNemar exact" in c["test"] and c["n"] == 40
        expected = compare_paired([r["correct"] for r in predictions[c["a"]]], [r["correct"] for r in predictions[c["b"]]])
        assert c["difference"] == round(expected.difference, 6) and c["p_value"] == pytest.approx(expected.p_value, rel=1e-5)
        assert c["ci"] == [round(x, 6) for x in expected.ci] and (c["a_only"], c["b_only"]) == (
            expected.a_only, expected.b_only)
    json.dumps(comparisons)  # plain JSON values
    # Matched by id, not by line: reordering a file changes nothing.
    shuffled = {**predictions, "rd": list(reversed(predictions["rd"]))}
    assert compare_variants(shuffled) == comparisons
    # SERT+RD vs RD: RD's right answers plus 2 more (i = 0, 21 of 40): within noise at this size.
    rd = comparisons["sert_rd_vs_rd"]
    assert rd["a_only"] == 2 and rd["b_only"] == 0 and rd["p_value"] == 0.5


def test_different_questions_are_a_one_line_error():
    predictions = fake_predictions()
    predictions["rd"][0] = {**predictions["rd"][0], "id": "other"}
    with pytest.raises(DataError) as err:
        compare_variants(predictions)
    assert str(err.value) == ("data/predictions/sert_rd.jsonl and data/predictions/rd.jsonl: not the same test "
                              "questions (1 ids only in sert_rd, 1 only in rd, e.g. 'q0'); evaluate both on the "
                              "same test split")
    predictions = fake_predictions()
    predictions["sert"].append(predictions["sert"][0])
    with pytest.raises(DataError, match=r"^data/predictions/sert.jsonl: question id 'q0' appears twice$"):
        compare_variants(predictions)


def test_paired_table_calls_a_difference_beyond_noise_only_when_it_is():
    evals = fake_evals()
    comparisons = compare_variants(fake_predictions())
    md = render_markdown("modsum", "tiny", evals, FUNNEL, TEACHER, None, comparisons=comparisons)
    section = md.split("## Paired comparisons")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| SERT vs Base (zero-shot)", "| SERT+RD vs RD", "| RD vs Finetune",
                                                "| SERT+RD vs SERT"]
    for c, row in zip(comparisons.values(), rows):
        covers = c["ci"][0] <= 0 <= c["ci"][1]
        assert ("beyond noise" in row) == (not covers and c["p_value"] < 0.05)
        assert ("effect" not in row) and (("within noise" in row) == (covers or c["p_value"] >= 0.05))
    assert rows[1] == ("| SERT+RD vs RD | 0.400 | 0.300 | +0.050 [0.000, +0.125] | 0.500 | 2 | 0 "
                       "| within noise (interval covers 0, p >= 0.05) |")
    # (Acc a / Acc b come from the metrics files, here fake_evals; the differences from the predictions.)
    assert rows[2] == "| RD vs Finetune | 0.300 | 0.100 | +0.400 [+0.200, +0.600] | 0.002 | 20 | 4 | higher, beyond noise |"
    from sert.compare import paired_reading
    assert paired_reading({"difference": 0.1, "ci": [0.01, 0.2], "p_value": 0.06}) == "within noise (p >= 0.05)"
    assert paired_reading({"difference": -0.1, "ci": [-0.2, -0.01], "p_value": 0.01}) == "lower, beyond noise"


def test_published_sizes_and_counts():
    assert TEST_SIZES == {"strategyqa": 687, "commonsenseqa": 1221}
    assert published_test_size("strategy_qa") == 687 and published_test_size("csqa") == 1221
    assert published_test_size("modsum") is None
    assert published_count(52.69, 687) == 362 and published_count(54.65, 687) == 375  # 54.65% is no count of 687


def test_papers_sert_rd_vs_rd_on_strategyqa_gpt2_covers_zero():
    """Table II: SERT+RD 54.65 vs RD 52.69 on StrategyQA's 687 test questions (GPT-2): within noise."""
    rows = {(r["a"], r["b"]): r for r in paper_comparisons(published_run("strategyqa", "gpt2"), 687)}
    assert list(rows) == [("sert_rd", "rd"), ("rd", "finetune"), ("sert_rd", "sert")]  # no zero-shot row
    row = rows[("sert_rd", "rd")]
    assert row["difference"] == 1.96 and row["ci"][0] < 0 < row["ci"][1]
    low, high = newcombe_difference(375, 687, 362, 687)
    assert row["ci"] == [round(100 * low, 2), round(100 * high, 2)]
    # GPT-2 large, StrategyQA: SERT+RD 57.21 vs RD 50.22, a 7-point difference, is beyond noise even unpaired.
    large = {(r["a"], r["b"]): r for r in paper_comparisons(published_run("strategyqa", "gpt2-large"), 687)}
    assert large[("sert_rd", "rd")]["ci"][0] > 0


def test_report_shows_the_papers_differences_against_noise():
    published = published_run("strategyqa", "gpt2")
    md = render_markdown("strategyqa", "gpt2", fake_evals(), FUNNEL, TEACHER, published, published_n=687)
    section = md.split("## The paper's differences against noise")[1].split("\n## ")[0]
    assert "unpaired difference of two" in section and "the most its numbers allow" in section
    assert "a paired test on the same questions" in section and "687 test questions" in section
    assert "| SERT+RD vs RD | 54.65 | 52.69 | +1.96 [" in section and "| within noise (interval covers 0) |" in section
    assert "Not in Table II: SERT vs Base (zero-shot) (it has no zero-shot student row)." in section
    assert "beyond noise" not in section  # GPT-2 small on StrategyQA: none of the three is
    assert "differences against noise" not in render_markdown("modsum", "tiny", fake_evals(), FUNNEL, TEACHER, None,
                                                              published_n=None)


def report_workspace(root: Path, evals: dict, predictions: dict, task: str = "modsum", model: str = "tiny"):
    """The report stage's inputs (metrics without *_ci keys, which the report does not need)."""
    params = {"task": {"name": task}, "student": {"model": model}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for v, m in evals.items():
        write_json(root / "metrics/eval" / f"{v}.json", m)
        write_jsonl(root / "data/predictions" / f"{v}.jsonl", predictions[v])
    write_json(root / "metrics/filter.json", FUNNEL)
    write_json(root / "metrics/teacher.json", TEACHER)
    write_json(root / "metrics/eval/teacher.json", TEACHER_EVAL)
    write_json(root / "metrics/rounds.json", {})
    write_json(root / "metrics/judge.json", {"enabled": False})


def test_report_stage_writes_the_report_and_the_comparisons(tmp_path, monkeypatch):
    from stages import report

    report_workspace(tmp_path, fake_evals(), fake_predictions(8))
    monkeypatch.chdir(tmp_path)
    report.main(params=Path("params.yaml"))
    compare = json.loads(Path("metrics/compare.json").read_text())
    assert [(c["a"], c["b"]) for c in compare.values()] == list(PAIRS) and all(c["n"] == 8 for c in compare.values())
    md = Path("metrics/report.md").read_text()
    assert "## Paired comparisons" in md and "## Answers given" in md and "## Teacher" in md
    assert "## LLM judge\n\nOff (`judge.enabled: false`)" in md
    assert not Path("metrics/summary.json").exists()  # every number has one home: metrics/eval, filter, teacher


def test_report_stage_refuses_predictions_on_different_questions(tmp_path, monkeypatch, capsys):
    from stages import report

    predictions = fake_predictions(8)
    predictions["base"] = predictions["base"][:-1]
    report_workspace(tmp_path, fake_evals(), predictions)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        report.main(params=Path("params.yaml"))
    assert exit_.value.code == 1
    assert capsys.readouterr().err == ("error: data/predictions/sert.jsonl and data/predictions/base.jsonl: not the "
                                       "same test questions (1 ids only in sert, 0 only in base, e.g. 'q7'); "
                                       "evaluate both on the same test split\n")
    assert not Path("metrics/compare.json").exists() and not Path("metrics/report.md").exists()


def test_pipeline_writes_intervals_and_the_paired_comparisons(project):
    for v in VARIANTS + ("teacher",):
        m = json.loads((project / "metrics/eval" / f"{v}.json").read_text())
        keys = list(m)
        for key in ("accuracy", "format_rate", "length", "repetition", "reasoning_rate"):
            ci = m[f"{key}_ci"]
            assert keys.index(f"{key}_ci") == keys.index(key) + 1
            if ci is not None:
                assert ci[0] <= m[key] <= ci[1]
        assert m["accuracy_ci"] == [round(x, 6) for x in wilson(m["n_correct"], m["n"])]
    compare = json.loads((project / "metrics/compare.json").read_text())
    assert [(c["a"], c["b"]) for c in compare.values()] == list(PAIRS)
    for c in compare.values():
        acc = {v: json.loads((project / "metrics/eval" / f"{v}.json").read_text())["accuracy"] for v in (c["a"], c["b"])}
        assert c["difference"] == pytest.approx(acc[c["a"]] - acc[c["b"]], abs=1e-6) and 0 <= c["p_value"] <= 1
    md = (project / "metrics/report.md").read_text()
    assert "## Paired comparisons" in md and "In brackets, 95% intervals" in md
    assert len(list(ET.fromstring((project / "metrics/report.svg").read_text()).iter(
        "{http://www.w3.org/2000/svg}path"))) >= 5 * 4  # every variant's interval except degenerate ones


def test_docs_table_of_the_papers_differences_is_computed():
    """docs/metrics.md's table (all six published runs) is what sert.compare computes, row for row."""
    from conftest import ROOT

    from sert.compare import paper_reading
    from sert.report import label

    names = {"gpt2": "GPT-2", "gpt2-medium": "GPT-2-medium", "gpt2-large": "GPT-2-large",
             "strategyqa": "StrategyQA", "commonsenseqa": "CommonsenseQA"}
    expected = [f"| {names[s]} | {names[t]} | {label(c['a'])} vs {label(c['b'])} | {c['difference']:+.2f} "
                f"[{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}] | {paper_reading(c).split(' (')[0]} |"
                for s in ("gpt2", "gpt2-medium", "gpt2-large") for t in ("strategyqa", "commonsenseqa")
                for c in paper_comparisons(published_run(t, s), TEST_SIZES[t])]
    readme = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| GPT-2") and " vs " in line]
    assert rows == expected
    beyond = sum("beyond noise" in row for row in expected)
    assert f"{beyond} of the {len(expected)} differences have an interval that excludes 0" in " ".join(readme.split())


def test_teacher_section_states_a_scarce_erring_teachers_supply():
    scarce = {**TEACHER, "questions": 400, "covered": 100, "wrong": 30, "kept": 70}
    md = render_markdown("modsum", "tiny", fake_evals(), FUNNEL, scarce, None, figure="report.svg")
    assert "It covered 100 of 400 questions, 30 of its rationales wrong by design. 70 rationales were kept" in md
    plain = render_markdown("modsum", "tiny", fake_evals(), FUNNEL, TEACHER, None, figure="report.svg")
    assert "covered" not in plain.split("## Teacher")[1]


# -- answers given: the majority-class baseline and each variant's answer distribution -------------
def records(gold: str, predicted: str) -> list[dict]:
    """One record per character: gold answer and prediction ('-' for none)."""
    return [{"answer": g, "prediction": None if p == "-" else p} for g, p in zip(gold, predicted, strict=True)]


def test_majority_class_and_answer_counts():
    rs = records("nnnyy", "nnn-y")
    assert majority_class(rs) == ("n", 3, 5)
    assert majority_class(records("yynn", "----")) == ("n", 2, 4)  # a tie goes to the answer sorting first
    assert answer_counts(rs) == {"n": 3, "y": 1, "none": 1}
    assert list(answer_counts(records("abcde", "cbcb-"))) == ["b", "c", "none"]
    with pytest.raises(ValueError, match="no test questions"):
        majority_class([])


def test_dominant_answer_counts_questions_without_an_answer():
    assert dominant_answer(records("nnnnnyyyyy", "nnnnnnnnyy")) == ("n", 0.8)
    assert dominant_answer(records("nnnnnyyyyy", "nnnnnnnyyy")) is None
    # 8 of 10 predictions are "n", but only 8 of 20 questions: not a repeater by the questions' count
    assert dominant_answer(records("n" * 20, "nnnnnnnnyy" + "-" * 10)) is None
    assert dominant_answer(records("nn", "--")) is None


def test_answers_section_names_the_repeater_and_the_baseline():
    predictions = {"base": records("nnnyy", "n----"), "finetune": records("nnnyy", "nnnyy"),
                   "sert": records("nnnyy", "nnnnn")}
    md = "\n".join(answers_markdown(predictions))
    assert 'Always answering "n" scores 0.600' in md
    assert "| Base (zero-shot) | 1 | 0 | 4 | n 0.200 |" in md
    assert "| SERT | 5 | 0 | 0 | n 1.000 |" in md
    assert 'Mostly one answer (at least 80% of the questions): SERT ("n" on 100%)' in md
    full = render_markdown("modsum", "tiny", fake_evals(), FUNNEL, TEACHER, None, predictions=predictions)
    assert full.index("## Answers given") < full.index("## Self-training data")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["a", "b", "c", None])), min_size=1, max_size=40))
def test_answer_counts_cover_every_question(pairs):
    rs = [{"answer": g, "prediction": p} for g, p in pairs]
    counts = answer_counts(rs)
    assert sum(counts.values()) == len(rs)
    answer, count, n = majority_class(rs)
    assert n == len(rs) and count == max(sum(r["answer"] == a for r in rs) for a in "abc")
    dominant = dominant_answer(rs)
    top = max((c for a, c in counts.items() if a != "none"), default=0)
    assert (dominant is not None) == (top / len(rs) >= DOMINANT_SHARE)
