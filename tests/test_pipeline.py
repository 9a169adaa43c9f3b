"""End to end: the real stages, run by `dvc repro` on a very small configuration in a temporary
copy of the project (the session fixture `project` in conftest.py, shared with test_report.py and
test_workflow.py); then the bad-input paths of the CLI on that copy."""

import json

import pytest
import yaml
from conftest import TINY, copy_project, run

def test_repro_writes_every_output_and_metric(project):
    for split in ("train", "test"):
        lines = (project / "data/prepared" / f"{split}.jsonl").read_text().splitlines()
        assert len(lines) == {"train": 12, "test": 8}[split]
        assert set(json.loads(lines[0])) == {"id", "question", "answer"}
    samples = [json.loads(x) for x in (project / "data/samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12 * 3 * 2
    assert set(samples[0]) == {"id", "branch", "branch_token", "text", "n_tokens", "perplexity", "rep2", "eos_branch",
                               "kept_perplexity"}
    funnel = json.loads((project / "metrics/filter.json").read_text())
    assert funnel["samples"] == 72 and all(isinstance(v, int) for v in funnel.values())
    assert funnel["samples"] >= funnel["after_pattern"] >= funnel["after_length"] >= funnel["after_repetition"] \
        >= funnel["after_perplexity"] >= funnel["selected"] >= 1
    teacher = json.loads((project / "metrics/teacher.json").read_text())
    assert teacher["n"] == 12 and teacher["accuracy"] == 1.0
    for variant in ("base", "finetune", "sert", "rd", "sert_rd"):
        assert (project / "models" / variant / "model.safetensors").is_file()
        m = json.loads((project / "metrics/eval" / f"{variant}.json").read_text())
        assert m["n"] == 8
        for key in ("accuracy", "format_rate", "reasoning_rate", "repetition"):
            assert 0.0 <= m[key] <= 1.0
        assert m["length"] >= 0
        assert len((project / "data/predictions" / f"{variant}.jsonl").read_text().splitlines()) == 8
    report = (project / "metrics/report.md").read_text()
    assert "| SERT+RD |" in report and "| Base (zero-shot) |" in report
    assert set(json.loads((project / "metrics/compare.json").read_text())) == {
        "sert_vs_base", "sert_rd_vs_rd", "rd_vs_finetune", "sert_rd_vs_sert"}


def test_second_repro_does_nothing(project):
    out = run(["dvc", "repro"], project).stdout
    assert "Running stage" not in out
    assert "up to date" in run(["dvc", "status"], project).stdout


def test_loss_curves_render_as_dvc_plots(project):
    for variant in ("sert", "finetune", "rd", "sert_rd"):
        rows = (project / "metrics/plots/train" / f"{variant}.csv").read_text().splitlines()
        steps = json.loads((project / "metrics/train" / f"{variant}.json").read_text())["steps"]
        assert rows[0] == "step,loss" and len(rows) == 1 + steps
        assert "seconds" not in json.loads((project / "metrics/train" / f"{variant}.json").read_text())
    assert len((project / "metrics/plots/pretrain.csv").read_text().splitlines()) == 1 + TINY["pretrain"]["steps"]
    plots = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)["data"]
    values = plots["Training loss per step"][0]["content"]["data"]["values"]
    assert {v["filename"] for v in values} == {"sert.csv", "finetune.csv", "rd.csv", "sert_rd.csv"}
    assert plots["Pretraining loss per step"][0]["content"]["data"]["values"]


def test_malformed_jsonl_is_a_one_line_error_and_keeps_outputs(project):
    samples = project / "data/samples.jsonl"
    good = samples.read_text()
    before = (project / "data/self_train.jsonl").read_text()
    try:
        lines = good.splitlines()
        lines[2] = '{"id": "oops"'
        samples.write_text("\n".join(lines) + "\n")
        result = run(["sert", "filter"], project, check=False)
        assert result.returncode == 1
        assert result.stderr.strip() == "error: data/samples.jsonl:3: malformed JSON (Expecting ',' delimiter)"
        assert (project / "data/self_train.jsonl").read_text() == before
    finally:
        samples.write_text(good)


def test_filter_that_keeps_nothing_shows_the_funnel(project, tmp_path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["filter"]["min_length"] = 10_000
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(params))
    before = (project / "data/self_train.jsonl").read_text()
    result = run(["sert", "filter", "--params", str(strict)], project, check=False)
    assert result.returncode == 1
    assert "no sample survived the filters (samples 72 -> after_pattern" in result.stderr
    assert "after_length 0" in result.stderr
    assert (project / "data/self_train.jsonl").read_text() == before


@pytest.mark.parametrize("command, message", [
    (["sert", "train", "nope"], "error: unknown variant 'nope'"),
    (["sert", "train", "sert"], "error: variant 'sert' has a stage of its own: run `sert train-sert`"),
    (["sert", "evaluate", "nope"], "error: unknown variant 'nope'"),
])
def test_unknown_names(project, command, message):
    result = run(command, project, check=False)
    assert result.returncode == 1 and result.stderr.startswith(message)


def test_unknown_backend_and_unreachable_model(project, tmp_path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["teacher"]["backend"] = "gpt5"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(params))
    for stage in ("teacher", "prepare"):  # checked at load: every stage fails early, not only teacher
        result = run(["sert", stage, "--params", str(bad)], project, check=False)
        assert result.returncode == 1 and result.stderr == \
            "error: teacher.backend: expected 'oracle', 'import', 'openai' or 'none', got 'gpt5'\n"
    params["teacher"]["backend"] = "oracle"
    params["student"]["model"] = str(tmp_path / "no-weights")
    (tmp_path / "no-weights").mkdir()
    bad.write_text(yaml.safe_dump(params))
    result = run(["sert", "base", "--params", str(bad)], project, check=False)
    assert result.returncode == 1 and "no *.safetensors weights" in result.stderr


def test_without_a_teacher_the_distillation_variants_are_not_trained_and_the_report_says_so(project, tmp_path):
    work = copy_project(project, tmp_path / "none")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["teacher"]["backend"] = "none"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run(["dvc", "repro"], work).stdout
    reason = "no teacher rationales (teacher.backend: none)"
    assert "train rd: not trained, " + reason in log
    for variant in ("rd", "sert_rd"):
        assert [p.name for p in (work / "models" / variant).iterdir()] == ["not_trained.json"]
        assert json.loads((work / f"metrics/eval/{variant}.json").read_text()) == {"available": False,
                                                                                   "reason": reason}
        assert json.loads((work / f"metrics/train/{variant}.json").read_text()) == {"trained": False,
                                                                                    "reason": reason}
        assert (work / f"data/predictions/{variant}.jsonl").read_text() == ""
        assert (work / f"metrics/plots/train/{variant}.csv").read_text() == "step,loss\n"
        assert json.loads((work / f"metrics/plots/confusion/{variant}.json").read_text()) == []
    assert (work / "data/teacher.jsonl").read_text() == ""
    # The variants that were trained are untouched: finetune retrained to the same bytes.
    for variant in ("base", "finetune", "sert"):
        assert (work / f"metrics/eval/{variant}.json").read_text() == \
            (project / f"metrics/eval/{variant}.json").read_text()
    report = (work / "metrics/report.md").read_text()
    assert "| RD | not trained | - |" in report and "| SERT+RD | not trained | - |" in report
    assert f"Not trained: RD, SERT+RD: {reason}." in report
    assert "No teacher row: teacher.backend is none: there is no teacher." in report
    assert "None (`teacher.backend: none`): no rationales" in report
    assert list(json.loads((work / "metrics/compare.json").read_text())) == ["sert_vs_base"]
    assert [r["variant"] for r in json.loads((work / "metrics/plots/variants.json").read_text())] == \
        ["Base (zero-shot)", "Finetune", "SERT"]
    assert "SERT+RD" not in (work / "metrics/report.svg").read_text()
    assert "Stage 'train@rd' didn't change" in run(["dvc", "repro"], work).stdout
