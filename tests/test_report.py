"""The report: published numbers, the markdown table and figure, the plot data, and the DVC plots
rendered from the tiny pipeline (`dvc plots show` on the session `project`)."""

import json
import xml.etree.ElementTree as ET

import pytest
from conftest import run

from sert.published import TABLE_II, published_run, published_student, published_teacher
from sert.report import (FUNNEL_STEPS, confusion_rows, funnel_rows, render_markdown, render_svg,
                         variant_rows)

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
