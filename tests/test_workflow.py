"""The researcher's workflow on the tiny pipeline (session fixture `project`, copied so the shared
project stays untouched): the documented experiment commands, run exactly as written, and sharing
results through a DVC remote (push, fresh clone, pull, nothing to recompute)."""

import re
import time
from pathlib import Path

import yaml
from conftest import ROOT, copy_project, run

BEGIN, END = "<!-- experiments:begin", "<!-- experiments:end -->"
TERMINAL = 200
"""Columns of the terminal the documented `dvc exp show` view must fit."""
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
"""The pages that may hold the experiment markers: the README and the docs site's."""


def documented_commands() -> list[str]:
    """The shell lines of the ```bash blocks between the experiment markers, comments removed (the
    markers are on exactly one page of the README and the docs, docs/experiments.md)."""
    texts = [text for text in (page.read_text(encoding="utf-8") for page in PAGES) if BEGIN in text]
    assert len(texts) == 1, f"the experiment markers are on {len(texts)} pages, expected 1"
    text = texts[0]
    section = text[text.index(BEGIN):text.index(END)]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def wait_for_queue(cwd: Path, timeout: float = 900) -> str:
    """`dvc queue start` returns at once; poll (sparingly: each call costs ~1.5 s CPU) until it drains."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], cwd).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(5)
    raise AssertionError(f"queue still busy after {timeout} s:\n{status}")


def test_documented_commands_are_the_ones_tested():
    commands = documented_commands()
    assert commands[:3] == ["dvc exp run --queue -n rep015 -S filter.max_rep2=0.15",
                            "dvc exp run --queue -n rep030 -S filter.max_rep2=0.3", "dvc queue start"]
    assert any(c.startswith("dvc exp apply") for c in commands)
    assert any(c.startswith("dvc exp branch") for c in commands)


def test_documented_experiments_run_as_written(project, tmp_path):
    work = copy_project(project, tmp_path / "exp")
    outputs = {}
    for command in documented_commands():
        # a 200-column terminal: DVC's table squeezes its columns with "…" when it is wider
        outputs[command] = run(["bash", "-c", f"COLUMNS={TERMINAL} {command}"], work).stdout
        if command == "dvc queue start":
            status = wait_for_queue(work)
            assert len(re.findall(r"\bSuccess\b", status)) == 2, status
    for name in ("rep015", "rep030"):  # each queued run reran only the filter and what depends on it
        log = run(["dvc", "queue", "logs", name], work).stdout
        ran = set(re.findall(r"Running stage '([^']+)'", log))
        assert "filter" in ran and not ran & {"prepare", "base", "sample", "teacher", "train@finetune",
                                              "train@rd", "evaluate@base", "evaluate@finetune", "evaluate@rd"}
    shown = next(out for cmd, out in outputs.items() if cmd.startswith("dvc exp show --drop '.*'"))
    assert "…" not in shown and max(len(line.rstrip()) for line in shown.splitlines()) <= TERMINAL, shown
    header = shown.splitlines()[1].split()
    assert header == ["Experiment", "after_repetition", "selected", "metrics/eval/sert.json:accuracy",
                      "metrics/eval/sert.json:reasoning_rate", "metrics/eval/sert_rd.json:accuracy",
                      "filter.max_rep2"], shown
    assert re.search(r"\[rep015\].* 0\.15 ", shown) and re.search(r"\[rep030\].* 0\.3 ", shown)
    changed = next(out for cmd, out in outputs.items() if cmd.startswith("dvc exp diff"))
    assert re.search(r"\| params\.yaml +\| filter\.max_rep2 +\| 0\.15 +\| 0\.3 ", changed), changed
    # The applied winner is in the workspace, and metrics diff shows what it changed.
    assert yaml.safe_load((work / "params.yaml").read_text())["filter"]["max_rep2"] == 0.15
    diff = next(out for cmd, out in outputs.items() if cmd.startswith("dvc metrics diff"))
    assert "after_repetition" in diff
    assert (work / "plots-diff" / "index.html").is_file()
    branch = next(c for c in outputs if c.startswith("dvc exp branch")).split()[-1]
    assert "max_rep2: 0.15" in run(["git", "show", f"{branch}:params.yaml"], work).stdout
    assert "up to date" in run(["dvc", "status"], work).stdout


def test_remote_push_clone_pull_reproduces_without_recomputing(project, tmp_path):
    work = copy_project(project, tmp_path / "origin")
    storage = tmp_path / "storage"
    run(["dvc", "remote", "add", "-d", "local", str(storage)], work)
    run(["git", "add", ".dvc/config"], work)
    run(["git", "-c", "user.name=sert tests", "-c", "user.email=tests@example.invalid", "commit", "-q", "-m",
         "remote"], work)
    run(["dvc", "push"], work)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(work), str(clone)], tmp_path)
    assert not (clone / "models" / "base").exists() and not (clone / ".dvc" / "cache").exists()
    run(["dvc", "pull"], clone)
    for variant in ("base", "finetune", "sert", "rd", "sert_rd"):
        weights = Path("models") / variant / "model.safetensors"
        assert (clone / weights).read_bytes() == (work / weights).read_bytes()
    assert (clone / "data/self_train.jsonl").read_text() == (work / "data/self_train.jsonl").read_text()
    assert "Data and pipelines are up to date." in run(["dvc", "status"], clone).stdout
    out = run(["dvc", "repro"], clone).stdout
    assert "Running stage" not in out and "Data and pipelines are up to date." in out
    assert run(["git", "status", "--porcelain"], clone).stdout == ""
