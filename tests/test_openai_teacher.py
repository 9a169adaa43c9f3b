"""The ``openai`` teacher and the LLM judge against a local OpenAI-compatible server
(tests/openai_server.py: real sockets, the real ``openai`` client, injected faults)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from openai_server import judge_scores, kill_part_way
from sert.api import request_key
from sert.config import ApiConfig
from sert.judge import CRITERIA, parse_scores
from sert.report import judge_markdown
from sert.tasks import TaskConfig, get_task

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-SECRET0123456789abcdefXYZ"
CACHE = Path(".sert-cache/teacher.sqlite")  # each test's own cache directory (the project fixture)


def cached_keys(path=CACHE) -> set[str]:
    """The request keys a response store holds (read with plain sqlite3, as another tool would)."""
    import sqlite3

    if not Path(path).is_file():
        return set()
    db = sqlite3.connect(path, timeout=30)
    try:
        return {key for (key,) in db.execute("SELECT key FROM responses")}
    except sqlite3.OperationalError:  # created, its tables not yet
        return set()
    finally:
        db.close()


def write_project(root: Path, base_url: str, n_train: int = 12, **teacher) -> list:
    """data/prepared/{train,test}.jsonl for modsum and a params.yaml with the openai teacher."""
    task = get_task(TaskConfig(options={"modsum": {"n_train": n_train, "n_test": 6}}))
    splits = task.load()
    for split, examples in splits.items():
        path = root / "data/prepared" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(ex.to_json()) + "\n" for ex in examples))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["task"]["options"] = {"modsum": {"n_train": n_train, "n_test": 6}}
    update(params["teacher"], {"backend": "openai", "model": "teacher-model", "base_url": base_url, "timeout": 1.5,
                                "backoff_base": 0.001, "backoff_max": 0.01, "max_retries": 3, **teacher})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return splits["train"]


API_KEYS = {f.name for f in dataclasses.fields(ApiConfig)}


def update(section: dict, values: dict) -> None:
    """Set keys of a teacher or judge section; the request machinery's go to its ``api``."""
    for key, value in values.items():
        (section["api"] if key in API_KEYS else section)[key] = value


def set_params(root: Path, section: str, **values) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    update(params[section], values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_stage(module: str, capsys) -> tuple[int, str]:
    """Run a stage in-process (as `sert <stage>` would); returns (exit code, stdout + stderr)."""
    main = __import__(f"stages.{module}", fromlist=["main"]).main
    code = 0
    try:
        main(params=Path("params.yaml"))
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out + out.err


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture
def project(tmp_path, monkeypatch, fake):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("SERT_CACHE_DIR", str(tmp_path / ".sert-cache"))
    return tmp_path


def test_faults_end_in_a_rationale_or_a_recorded_failure(project, fake, capsys):
    examples = write_project(project, fake.base_url)
    q = [ex.question for ex in examples]
    fake.retry_after = "0.25"
    # The client waits 1.5 s (write_project); slow responses take 3 s. A wide margin on both sides:
    # with 0.4 s, a loaded CI machine timed out an ordinary request too.
    fake.slow_seconds = 3.0
    fake.faults.update({q[0]: ["429", "500", None], q[1]: ["slow", None], q[2]: ["malformed", None],
                        q[3]: ["drop", None], q[4]: ["empty"], q[5]: ["503"]})
    fake.wrong.add(q[6])
    code, out = run_stage("teacher", capsys)
    # Default teacher.max_failed_share 0: two questions failed for good, so the stage fails, saying why.
    assert code == 1
    assert "error: teacher: 2 of 12 rationales failed" in out and "empty reasoning completion" in out
    assert "HTTP 503" in out
    rows = read_jsonl("data/teacher.jsonl")
    metrics = json.loads(Path("metrics/teacher.json").read_text())
    failed = {f["id"]: f["reason"] for f in metrics["failures"]}
    assert set(failed) == {examples[4].id, examples[5].id}
    assert failed[examples[5].id].startswith("HTTP 503") and "gave up after 4 attempts" in failed[examples[5].id]
    assert {r["id"] for r in rows} | set(failed) == {ex.id for ex in examples}
    assert not {r["id"] for r in rows} & set(failed)
    by_id = {r["id"]: r for r in rows}
    for ex in examples[:4]:  # recovered after retries, and scored by the task's own rule
        assert by_id[ex.id]["correct"] and by_id[ex.id]["answer"] == ex.answer
        assert "Therefore, the answer is" in by_id[ex.id]["rationale"]
    assert not by_id[examples[6].id]["correct"]
    assert metrics["n"] == 10 and metrics["n_correct"] == 9 and metrics["failed"] == 2 and metrics["jobs"] == 12
    usage = metrics["usage"]
    assert usage["retries"] >= 2 + 2 + 1 + 1 + 1 + 1 + 3
    assert usage["errors"]["HTTP 429"] == 2 and usage["errors"]["timeout"] == 2
    assert usage["errors"]["connection error"] == 2 and usage["errors"]["malformed response"] == 2
    assert usage["errors"]["HTTP 500"] == 2 and usage["errors"]["HTTP 503"] == 4
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    # Retry-After honoured: the retry of a 429 came no sooner than the server asked.
    rate_limited = {key for key, _, body in fake.requests if q[0] in json.dumps(body)}
    assert len(rate_limited) == 2
    for key in rate_limited:
        assert fake.times[key][1] - fake.times[key][0] >= 0.24
    # Rerun with a tolerance: answered requests come from the cache (the empty completion too,
    # it was a paid answer), only the 503 question is asked again, and the stage passes.
    fake.reset_log()
    set_params(project, "teacher", max_failed_share=0.2)
    code, out = run_stage("teacher", capsys)
    assert code == 0, out
    assert all(q[5] in json.dumps(body) for _, _, body in fake.requests) and len(fake.requests) == 4


def test_second_run_sends_nothing_and_writes_the_same(project, fake, capsys):
    examples = write_project(project, fake.base_url, n_train=15)
    assert run_stage("teacher", capsys)[0] == 0
    assert len(fake.requests) == 30 and max(fake.counts.values()) == 1
    first = Path("data/teacher.jsonl").read_text()
    assert len(read_jsonl("data/teacher.jsonl")) == 15
    assert all(r["correct"] for r in read_jsonl("data/teacher.jsonl"))
    fake.reset_log()
    assert run_stage("teacher", capsys)[0] == 0
    assert fake.requests == []
    assert Path("data/teacher.jsonl").read_text() == first
    usage = json.loads(Path("metrics/teacher.json").read_text())["usage"]
    assert usage["requests_sent"] == 0 and usage["cache_hits"] == 30 and usage["cached_prompt_tokens"] > 0
    assert len(examples) == 15


def test_kill_and_rerun_never_requests_twice(project, fake, capsys):
    n = 40
    write_project(project, fake.base_url, n_train=n, concurrency=4, timeout=5.0)
    fake.delay = 0.1  # 80 requests, 4 in flight: ~2 s, so the kill lands part-way
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "stages.cli", "teacher"], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_part_way(proc, lambda: len(cached_keys()) >= 12, "the teacher")
    assert not Path("data/teacher.jsonl").exists()
    cached = cached_keys()
    assert 12 <= len(cached) < 2 * n
    before = set(fake.counts)
    assert 2 <= fake.max_in_flight <= 4  # teacher.api.concurrency requests in flight, never more
    fake.reset_log()
    fake.delay = 0.0
    assert run_stage("teacher", capsys)[0] == 0
    again = [key for key, *_ in fake.requests]
    assert not set(again) & cached  # nothing answered before the kill is requested again
    assert len(again) == len(set(again))  # and nothing twice within the rerun
    assert cached | set(again) == cached_keys()
    assert len(cached | set(again)) == 2 * n and before <= cached | set(again)
    rows = read_jsonl("data/teacher.jsonl")
    assert len(rows) == n and all(r["correct"] for r in rows)


def test_the_key_is_written_nowhere(project, fake, capsys):
    write_project(project, fake.base_url, max_failed_share=1.0)
    examples = read_jsonl("data/prepared/train.jsonl")
    fake.faults[examples[0]["question"]] = ["500"]  # a failure with a reason in the metrics
    code, out = run_stage("teacher", capsys)
    assert code == 0 and KEY not in out
    # A wrong key: the server's 401 echoes it (masked, as OpenAI does); no retry, every job fails.
    wrong = "sk-wrongkey-0123456789-abcdefgh"
    os.environ["OPENAI_API_KEY"] = wrong
    set_params(project, "teacher", cache="other.sqlite", max_failed_share=0.0)
    fake.reset_log()
    code, out = run_stage("teacher", capsys)
    assert code == 1 and "HTTP 401" in out and len(fake.requests) == 12
    assert wrong not in out and wrong[:8] not in out
    for path in project.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and wrong.encode() not in data and wrong[:8].encode() not in data, path


def test_missing_key_fails_before_any_work(project, fake, capsys, monkeypatch):
    write_project(project, fake.base_url)
    monkeypatch.delenv("OPENAI_API_KEY")
    code, out = run_stage("teacher", capsys)
    assert code == 1
    assert "error: teacher.api.api_key_env: environment variable OPENAI_API_KEY is not set" in out
    assert fake.requests == [] and not CACHE.exists() and not Path("data/teacher.jsonl").exists()
    set_params(project, "teacher", api_key_env="MY_TEACHER_KEY")
    monkeypatch.setenv("MY_TEACHER_KEY", KEY)
    assert run_stage("teacher", capsys)[0] == 0


def test_budget_stops_before_exceeding_it(project, fake, capsys):
    write_project(project, fake.base_url, n_train=20, max_requests=9, concurrency=3)
    code, out = run_stage("teacher", capsys)
    assert code == 1 and "budget exhausted: teacher.api.max_requests=9" in out
    assert len(fake.requests) == 9
    metrics = json.loads(Path("metrics/teacher.json").read_text())
    assert metrics["usage"]["requests_sent"] == 9 and metrics["n"] + metrics["failed"] == 20
    assert len(cached_keys()) == 9
    # Tokens: the worst case of each request must fit, so the spend never passes the budget.
    set_params(project, "teacher", max_requests=None, max_tokens_total=1500)
    fake.reset_log()
    code, out = run_stage("teacher", capsys)
    metrics = json.loads(Path("metrics/teacher.json").read_text())
    spent = metrics["usage"]["total_tokens"]
    assert code == 1 and "budget exhausted: teacher.api.max_tokens_total=1500" in out
    assert 0 < spent <= 1500 and len(fake.requests) == metrics["usage"]["requests_sent"] > 0
    assert metrics["usage"]["cache_hits"] >= 9


def test_completions_endpoint_and_diverse_reasoning(project, fake, capsys):
    examples = write_project(project, fake.base_url, n_train=5, endpoint="completions", samples=3,
                             temperature=0.7)
    assert run_stage("teacher", capsys)[0] == 0
    assert {endpoint for _, endpoint, _ in fake.requests} == {"completions"}
    rows = read_jsonl("data/teacher.jsonl")
    assert len(rows) == 15 and all(r["correct"] for r in rows)
    assert {(r["id"], r["sample"]) for r in rows} == {(ex.id, s) for ex in examples for s in range(3)}
    assert len({r["rationale"] for r in rows}) == 15  # each sample is its own request and answer
    reasoning = [b for _, _, b in fake.requests if b["prompt"].endswith("Let's think step by step.")]
    assert len(reasoning) == 15 and {b["temperature"] for b in reasoning} == {0.7}
    assert reasoning[0]["prompt"] == f"Q: {examples[0].question}\nA: Let's think step by step." or any(
        b["prompt"] == f"Q: {examples[0].question}\nA: Let's think step by step." for b in reasoning)


def test_request_key_covers_the_whole_request():
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], "temperature": 0.0, "max_tokens": 8}
    keys = {request_key("chat", body), request_key("completions", body),
            request_key("chat", {**body, "model": "m2"}), request_key("chat", {**body, "temperature": 0.5}),
            request_key("chat", {**body, "max_tokens": 9}), request_key("chat", {**body, "seed": 1}),
            request_key("chat", {**body, "messages": [{"role": "user", "content": "q2"}]})}
    assert len(keys) == 7
    assert request_key("chat", dict(reversed(list(body.items())))) == request_key("chat", body)


# -- the judge ---------------------------------------------------------------------------------

def test_judge_disabled_by_default_needs_nothing(project, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    code, out = run_stage("judge", capsys)
    assert code == 0 and json.loads(Path("metrics/judge.json").read_text()) == {"enabled": False}


def test_judge_scores_are_extracted_and_aggregated(project, fake, capsys):
    write_project(project, fake.base_url)
    tests = read_jsonl("data/prepared/test.jsonl")
    outputs = {"base": [f" {t['answer']}." for t in tests],
               "rd": [f" Let's think step by step. Step {i}. So the answer is {t['answer']}." for i, t in enumerate(tests)]}
    for variant, texts in outputs.items():
        path = Path("data/predictions") / f"{variant}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"id": t["id"], "output": o}) + "\n" for t, o in zip(tests, texts)))
    fake.faults["Step 3."] = ["empty"]  # one reply without scores: a recorded failure, not a zero
    set_params(project, "judge", enabled=True, model="judge-model", base_url=fake.base_url, variants=["base", "rd"],
               max_failed_share=0.1, backoff_base=0.001, max_outputs=6)
    code, out = run_stage("judge", capsys)
    assert code == 0, out
    metrics = json.loads(Path("metrics/judge.json").read_text())
    assert metrics["n"] == 12 and metrics["failed"] == 1
    for variant, texts in outputs.items():
        expected = [judge_scores(o) for o in texts if "Step 3." not in o]
        m = metrics["variants"][variant]
        assert m["scored"] == len(expected) and m["n"] == 6
        for c in CRITERIA:
            assert m["mean"][c] == pytest.approx(sum(e[c] for e in expected) / len(expected), abs=1e-3)
            assert sum(m["distribution"][c]) == len(expected)
            assert all(m["distribution"][c][k] == sum(e[c] == k for e in expected) for k in range(11))
    records = read_jsonl("data/judge.jsonl")
    assert len(records) == 12 and sum(r["scores"] is None for r in records) == 1
    for variant, m in metrics["variants"].items():  # overall: the mean of the four, with its interval
        assert m["overall"] == pytest.approx(sum(m["mean"].values()) / 4, abs=2e-3)
        assert m["overall_ci"][0] <= m["overall"] <= m["overall_ci"][1]
    section = "\n".join(judge_markdown(metrics))
    assert section.startswith("## LLM judge") and "Judge `judge-model`" in section
    rd = metrics["variants"]["rd"]
    assert (f"| RD | 5 / 6 | {rd['mean']['coherence']:.2f} |" in section
            and f"{rd['overall']:.2f} [{rd['overall_ci'][0]:.2f}, {rd['overall_ci'][1]:.2f}] |" in section)
    assert "Not scored: 1 of 12 outputs (1 x judge reply without all four scores)" in section
    fake.reset_log()
    assert run_stage("judge", capsys)[0] == 0 and fake.requests == []  # the unparseable reply is cached too


FORMATS = [
    "{name}: {v}", "**{name}**: {v}/10", "- {name} (0-10): {v}", "{name} - {v} out of 10", "{name} score: {v}",
    "{Name}: {v}", "{NAME} = {v}", "### {Name}\n{v}",
]
NAMES = {"coherence": "coherence", "relevance": "relevance", "logical_consistency": "logical consistency",
         "completeness": "completeness"}


@given(scores=st.fixed_dictionaries({c: st.integers(0, 10) | st.sampled_from([7.5, 0.0, 10.0]) for c in CRITERIA}),
       fmt=st.sampled_from(FORMATS[:7]), preamble=st.text(alphabet="abc xyz.\n", max_size=40),
       conclusion=st.text(max_size=60))
def test_parse_scores_reads_common_judge_formats(scores, fmt, preamble, conclusion):
    lines = [fmt.format(name=NAMES[c], Name=NAMES[c].title(), NAME=NAMES[c].upper(), v=scores[c]) for c in CRITERIA]
    text = preamble + "\n" + "\n".join(lines) + "\nConclusion: " + conclusion
    assert parse_scores(text) == {c: float(v) for c, v in scores.items()}


@given(st.text(max_size=300))
def test_parse_scores_never_raises_and_stays_in_range(text):
    result = parse_scores(text)
    assert result is None or (set(result) == set(CRITERIA) and all(0 <= v <= 10 for v in result.values()))


def test_parse_scores_rejects_incomplete_or_out_of_range_replies():
    assert parse_scores("Coherence: 8\nRelevance: 7\nLogical consistency: 9") is None
    assert parse_scores("Coherence: 80\nRelevance: 7\nLogical consistency: 9\nCompleteness: 6") is None
    assert parse_scores("I refuse.") is None


@given(before=st.text(max_size=50), after=st.text(max_size=50),
       key=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=20, max_size=60))
def test_redact_removes_the_key_from_any_text(before, after, key):
    from sert.api import redact

    text = redact(before + key + after + key[:8] + "***" + key[-4:], key)
    assert key not in text and key[:8] not in text and key[-8:] not in text


def test_bad_templates_and_samples_are_params_errors(project, fake, capsys):
    write_project(project, fake.base_url, reasoning_template="Q: {question} {oops}")
    code, out = run_stage("teacher", capsys)
    assert code == 1 and "teacher.reasoning_template: bad placeholder" in out and fake.requests == []
    set_params(project, "teacher", reasoning_template="Q: {question}", samples=2)
    code, out = run_stage("teacher", capsys)
    assert code == 1 and "teacher.samples: several samples per question need teacher.temperature > 0" in out


def test_teacher_row_needs_no_key_and_sends_nothing(project, fake, capsys, monkeypatch):
    """The report's teacher row is its own stage: with the openai backend it says why it is absent,
    without a key and without a request (an evaluation knob reruns it, never the teacher)."""
    write_project(project, fake.base_url)
    monkeypatch.delenv("OPENAI_API_KEY")
    code, out = run_stage("teacher_row", capsys)
    assert code == 0, out
    row = json.loads(Path("metrics/eval/teacher.json").read_text())
    assert row["available"] is False and row["backend"] == "openai" and "no requests are sent" in row["reason"]
    assert fake.requests == [] and not CACHE.exists() and not Path("data/teacher.jsonl").exists()
