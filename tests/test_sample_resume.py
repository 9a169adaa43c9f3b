"""Kill the sample stage with SIGKILL part-way, rerun it, and compare with an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sert.modeling import save_student

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = 24


def make_project(path: Path, tiny_student) -> Path:
    model, tok = tiny_student
    save_student(model, tok, path / "models/base")
    (path / "data/prepared").mkdir(parents=True)
    with open(path / "data/prepared/train.jsonl", "w") as f:
        for i in range(QUESTIONS):
            terms = " + ".join(str((i * 7 + j) % 10) for j in range(2 + i % 4))
            f.write(json.dumps({"id": f"q{i}", "question": f"What is {terms} mod 10?", "answer": "0"}) + "\n")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sample"].update({"branches": 3, "samples_per_branch": 2, "max_new_tokens": 24, "batch_size": 2,
                             "device": "cpu"})
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    return path


def start(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "stages.cli", "sample"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_sample_stage_resumes_to_identical_output(tmp_path, tiny_student, monkeypatch):
    whole = make_project(tmp_path / "whole", tiny_student)
    killed = make_project(tmp_path / "killed", tiny_student)
    from stages.sample import main  # the uninterrupted run, in-process (saves an interpreter start)

    monkeypatch.chdir(whole)
    main(params=Path("params.yaml"))
    monkeypatch.chdir(tmp_path)
    assert (whole / "data/samples.jsonl").is_file()
    assert not (whole / ".sert-cache/sample").exists() or not any((whole / ".sert-cache/sample").iterdir())

    shards = killed / ".sert-cache/sample"
    target = random.Random().randint(1, QUESTIONS // 2 // 2)  # a random point, well before the end
    print(f"killing after {target} shards")
    proc = start(killed)
    deadline = time.monotonic() + 600
    while len(list(shards.glob("*/shard-*.jsonl"))) < target:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(list(shards.glob("*/shard-*.jsonl")))
    assert kept >= target and not (killed / "data/samples.jsonl").exists()

    rerun = subprocess.run([sys.executable, "-m", "stages.cli", "sample"], cwd=killed, capture_output=True,
                           text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming, {kept} of {QUESTIONS // 2} shards" in rerun.stdout
    assert (killed / "data/samples.jsonl").read_bytes() == (whole / "data/samples.jsonl").read_bytes()
    assert not any(shards.iterdir())  # the work directory is gone once the output is complete
