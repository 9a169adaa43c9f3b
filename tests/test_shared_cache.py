"""One response cache per repository, safe for parallel workers (sert/cache.py, sert/api.py).

Against the loopback OpenAI-compatible server (tests/openai_server.py, which counts every request
by cache key), in real git + DVC projects with the prepare, teacher and teacher_row stages of
dvc.yaml: a `dvc exp run --temp` experiment, two queued experiments run by `dvc queue start -j 2`,
and two workers (the repository and a git worktree) of which one is SIGKILLed mid-run and rerun.
Each body is answered once (a request in flight at a kill at most twice), the store passes
SQLite's integrity check, and the API key is in no file. The store itself: several writer
processes lose nothing, claims make a second worker wait, a dead owner's claim is taken over.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from openai_server import kill_part_way
from sert.cache import ResponseCache, cache_dir, read_export, store_path

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-SHARED0123456789abcdefXYZ"
N_TRAIN = 30  # 60 distinct request bodies: a reasoning and an answer request per question
STAGES = ("prepare", "teacher", "teacher_row")


def child_env() -> dict[str, str]:
    """What a user's shell gives DVC: our code, the key, and no SERT_CACHE_DIR (so the stages find
    the cache from the repository, as they would for a user)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": KEY}
    for name in ("SERT_CACHE_DIR", "DVC_ROOT"):
        env.pop(name, None)
    return env


def sh(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def make_project(root: Path, base_url: str) -> Path:
    """A git + DVC project with dvc.yaml's prepare, teacher and teacher_row stages, the openai
    teacher pointed at the loopback server, committed (experiments start from a commit)."""
    root.mkdir(parents=True)
    for name in ("sert", "stages"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: stages[s] for s in STAGES}}, sort_keys=False))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["task"]["options"] = {"modsum": {"n_train": N_TRAIN, "n_test": 6}}
    params["teacher"].update({"backend": "openai", "model": "teacher-model"})
    params["teacher"]["api"].update({"base_url": base_url, "timeout": 5.0, "backoff_base": 0.001,
                                     "backoff_max": 0.01, "max_retries": 3, "concurrency": 4})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], root)
    sh(["dvc", "init", "-q"], root)
    sh(["dvc", "config", "core.analytics", "false"], root)
    sh(["git", "add", "-A"], root)
    commit(root, "project")
    return root


def commit(root: Path, message: str) -> None:
    sh(["git", "-c", "user.name=sert tests", "-c", "user.email=tests@example.invalid", "commit", "-q", "-m", message],
       root)


def store(root: Path) -> Path:
    """Where the stages of the project at ``root`` keep the teacher's responses."""
    return root / ".git" / "sert-cache" / "teacher.sqlite"


def check_store(path: Path) -> set[str]:
    """The keys in a store that passes SQLite's integrity check, has no claim left and whose
    every response is whole JSON."""
    db = sqlite3.connect(path, timeout=30)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
        rows = db.execute("SELECT key, response FROM responses").fetchall()
    finally:
        db.close()
    for _, response in rows:
        assert set(json.loads(response)) >= {"text", "finish_reason"}
    return {key for key, _ in rows}


def stored(path: Path) -> int:
    """Responses in a store now (0 before it exists), read while workers write it."""
    if not path.is_file():
        return 0
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # created, its tables not yet
        return 0
    finally:
        db.close()


def assert_key_nowhere(*roots: Path) -> None:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert KEY.encode() not in path.read_bytes(), path


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


# -- in real DVC projects --------------------------------------------------------------------------

def test_temp_experiments_reuse_the_repository_cache(tmp_path, fake):
    project = make_project(tmp_path / "p", fake.base_url)
    out = sh(["dvc", "repro"], project).stdout
    assert ran_stages(out) == set(STAGES)
    assert len(fake.counts) == 2 * N_TRAIN and set(fake.counts.values()) == {1}
    first = check_store(store(project))
    assert first == set(fake.counts)
    sh(["git", "add", "-A"], project)
    commit(project, "repro")

    # An evaluation knob reruns the teacher row only: no stage that calls the API.
    fake.reset_log()
    out = sh(["dvc", "exp", "run", "--temp", "-S", "evaluate.max_new_tokens=80"], project).stdout
    assert ran_stages(out) == {"teacher_row"} and fake.requests == []
    # A teacher knob that changes no request reruns the teacher in the temporary copy, which has no
    # .sert-cache of its own: it finds the repository's store (DVC_ROOT) and sends nothing.
    out = sh(["dvc", "exp", "run", "--temp", "-S", "teacher.api.timeout=7.0"], project).stdout
    assert "teacher" in ran_stages(out) and fake.requests == []
    assert "(0 requests sent, 60 from the cache)" in out
    assert check_store(store(project)) == first
    assert not list(project.glob("**/.sert-cache"))  # no workspace store was made, anywhere
    assert_key_nowhere(project)


def test_two_queued_experiments_in_parallel_pay_each_request_once(tmp_path, fake):
    project = make_project(tmp_path / "p", fake.base_url)
    sh(["dvc", "repro", "prepare"], project)
    sh(["git", "add", "-A"], project)
    commit(project, "prepared")
    fake.delay = 0.4  # 60 requests, 2-3 in flight: 10 s or more each, so the two workers usually overlap
    # The same request bodies in both; concurrency (not part of a request) differs, so that the
    # second cannot be restored from DVC's run-cache: both run the teacher stage, at once.
    for name, concurrency in (("qa", 2), ("qb", 3)):
        sh(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"teacher.api.concurrency={concurrency}"], project)
    start_ = time.monotonic()
    sh(["dvc", "queue", "start", "-j", "2"], project)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        status = sh(["dvc", "queue", "status"], project).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert len(re.findall(r"\bSuccess\b", status)) == 2, status
    sent = {}
    for name in ("qa", "qb"):
        log = sh(["dvc", "queue", "logs", name], project).stdout
        assert "teacher" in ran_stages(log), log[-2000:]
        m = re.search(r"\((\d+) requests sent, (\d+) from the cache\)", log)
        sent[name] = (int(m.group(1)), int(m.group(2)))
        assert sum(sent[name]) == 2 * N_TRAIN
    print(f"two queued experiments: {sent} (sent, cached), {time.monotonic() - start_:.0f} s")
    assert len(fake.counts) == 2 * N_TRAIN and set(fake.counts.values()) == {1}  # each body answered once
    assert sum(s for s, _ in sent.values()) == 2 * N_TRAIN
    # Whether the two overlapped depends on when DVC's second worker gets going (on a loaded machine
    # the two can run one after the other: then the second sends nothing). Either way no body was
    # sent twice; in-flight claims between processes are tested directly by the store tests below (test_a_second_worker_waits_for_the_first_instead_of_sending).
    assert check_store(store(project)) == set(fake.counts)
    assert_key_nowhere(project)


def test_sigkill_of_one_of_two_workers_then_rerun(tmp_path, fake):
    """The repository and a git worktree run the teacher at once; one is killed mid-run. The other
    takes over the dead worker's claims and finishes; the rerun of the killed one sends nothing."""
    project = make_project(tmp_path / "p", fake.base_url)
    worktree = tmp_path / "wt"
    sh(["git", "worktree", "add", "-q", str(worktree)], project)
    assert cache_dir({}, worktree) == cache_dir({}, project) == project / ".git" / "sert-cache"
    # A long lease (timeout + backoff_max + 30 s): the other worker finishes within the
    # communicate() limit below only by taking over the dead worker's claims, not by outwaiting them.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["teacher"]["api"]["timeout"] = 300.0
    for root in (project, worktree):
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        sh([sys.executable, "-m", "stages.cli", "prepare"], root)
    fake.delay = 0.1
    command = [sys.executable, "-m", "stages.cli", "teacher"]
    victim = subprocess.Popen(command, cwd=project, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    other = subprocess.Popen(command, cwd=worktree, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_part_way(victim, lambda: stored(store(project)) >= 12, "the victim")
    try:
        out, err = other.communicate(timeout=120)
    finally:
        if other.poll() is None:  # stuck behind the dead worker's claims: fail, do not hang
            other.kill()
            other.wait(10)
    assert other.returncode == 0, err.decode()[-2000:]
    assert len(fake.counts) == 2 * N_TRAIN and max(fake.counts.values()) <= 2
    # Paid twice only if in flight at the kill: at most the victim's concurrency (4).
    twice = sum(c == 2 for c in fake.counts.values())
    print(f"SIGKILL of one of two workers: {sum(fake.counts.values())} requests for {len(fake.counts)} bodies, "
          f"{twice} answered twice")
    assert twice <= 4
    fake.reset_log()
    rerun = sh(command, project)
    assert fake.requests == [] and "(0 requests sent, 60 from the cache)" in rerun.stdout
    for root in (project, worktree):
        rows = [json.loads(line) for line in (root / "data/teacher.jsonl").read_text().splitlines()]
        assert len(rows) == N_TRAIN and all(r["correct"] for r in rows)
    assert len(check_store(store(project))) == 2 * N_TRAIN
    assert_key_nowhere(project, worktree)


def test_plan_counts_what_the_next_run_sends(tmp_path, fake):
    project = make_project(tmp_path / "p", fake.base_url)
    sh([sys.executable, "-m", "stages.cli", "prepare"], project)
    planned = sh(["sert", "cache", "plan"], project).stdout
    assert "teacher: 30 jobs, 60 requests, 0 cached, at most 60 to send" in planned
    assert "total: at most 60 requests to send" in planned
    sh([sys.executable, "-m", "stages.cli", "teacher"], project)
    assert len(fake.requests) == 60
    assert "at most 0 to send" in sh(["sert", "cache", "plan"], project).stdout
    # An override, as `dvc exp run -S` would set it: another temperature means other requests.
    assert "60 cached" not in sh(["sert", "cache", "plan", "-S", "teacher.temperature=0.5"], project).stdout
    # A budget stops a run part-way; the plan then counts exactly what the next run sends.
    fake.reset_log()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["teacher"]["model"] = "teacher-model-2"  # new reasoning and answer requests alike
    params["teacher"]["api"]["max_requests"] = 13
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert sh([sys.executable, "-m", "stages.cli", "teacher"], project, check=False).returncode == 1
    assert len(fake.requests) == 13
    params["teacher"]["api"]["max_requests"] = None
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    planned = sh(["sert", "cache", "plan"], project).stdout
    to_send = int(re.search(r"at most (\d+) to send", planned).group(1))
    fake.reset_log()
    sh([sys.executable, "-m", "stages.cli", "teacher"], project)
    assert len(fake.requests) == to_send == 60 - 13
    assert_key_nowhere(project)


def test_cache_info_export_import_and_clear(tmp_path):
    env = {**child_env(), "SERT_CACHE_DIR": str(tmp_path / "a")}
    a = ResponseCache(store_path("teacher.sqlite", tmp_path / "a"))
    a.put("k1", "chat", {"model": "m", "messages": [{"role": "user", "content": "é ✓"}]}, {"text": "x", "finish_reason": "stop"})
    a.close()

    def cli(*args, environ=env):
        return subprocess.run([sys.executable, "-m", "stages.cli", "cache", *args], cwd=tmp_path, env=environ,
                              capture_output=True, text=True, timeout=120)

    info = cli("info")
    assert info.returncode == 0 and f"cache directory: {tmp_path / 'a'} (from $SERT_CACHE_DIR)" in info.stdout
    assert "teacher.sqlite: 1 responses, 0 in flight" in info.stdout and "integrity ok" in info.stdout
    assert cli("export", "teacher.sqlite", str(tmp_path / "t.jsonl")).returncode == 0
    other = {**env, "SERT_CACHE_DIR": str(tmp_path / "b")}
    result = cli("import", "teacher.sqlite", str(tmp_path / "t.jsonl"), environ=other)
    assert result.returncode == 0 and "1 responses added, 0 already there" in result.stdout
    assert cli("import", "teacher.sqlite", str(tmp_path / "t.jsonl"), environ=other).stdout.endswith(
        "0 responses added, 1 already there\n")
    b = ResponseCache(tmp_path / "b" / "teacher.sqlite")
    assert b.get("k1") == {"text": "x", "finish_reason": "stop"}
    b.close()
    # A JSONL file where a store is expected: a one-line error that says how to merge it.
    (tmp_path / "a" / "old.jsonl").write_text('{"key": "k1", "endpoint": "chat", "request": {}, "response": {}}\n')
    old = cli("export", "old.jsonl", "-")
    assert old.returncode == 1 and old.stderr.startswith("error: ") and "not a SQLite response store" in old.stderr
    assert "Traceback" not in old.stderr
    (tmp_path / "bad.jsonl").write_text('{"key": "k"}\n')
    bad = cli("import", "teacher.sqlite", str(tmp_path / "bad.jsonl"))
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "bad.jsonl:1: not a cache record" in bad.stderr
    # A JSONL file whose last line a kill cut short: the whole lines are merged with --skip-invalid.
    (tmp_path / "cut.jsonl").write_text((tmp_path / "t.jsonl").read_text() + '{"key": "k2", "endpoint": "ch')
    cut = cli("import", "teacher.sqlite", str(tmp_path / "cut.jsonl"), "--skip-invalid", environ=other)
    assert cut.returncode == 0 and "skipped 1 lines" in cut.stderr and "0 responses added, 1 already there" in cut.stdout
    assert cli("clear", "--yes").returncode == 0
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["old.jsonl"]  # stores only, -wal and -shm too


# -- the store ----------------------------------------------------------------------------------

WRITER = """
import json, sys
from sert.cache import ResponseCache
cache = ResponseCache(sys.argv[1])
worker, n = int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    key = f"shared-{i}" if i % 3 == 0 else f"w{worker}-{i}"
    cache.put(key, "chat", {"i": i, "worker": worker}, {"text": ("x" * 2000) + key, "finish_reason": "stop", "worker": worker})
cache.close()
"""


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    n, workers = 150, 4
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(n)], env=env) for w in range(workers)]
    assert [p.wait(120) for p in procs] == [0] * workers
    keys = check_store(path)
    expected = {f"shared-{i}" for i in range(0, n, 3)} | {f"w{w}-{i}" for w in range(workers) for i in range(n) if i % 3}
    assert keys == expected
    cache = ResponseCache(path)
    assert all(cache.get(k)["text"] == "x" * 2000 + k for k in expected)  # no torn or mixed response
    cache.close()


def test_a_second_worker_waits_for_the_first_instead_of_sending(tmp_path):
    first, second = ResponseCache(tmp_path / "c.sqlite"), ResponseCache(tmp_path / "c.sqlite")
    assert first.claim("k", lease=60) is None  # first sends it
    got = []
    waiter = threading.Thread(target=lambda: got.append(second.claim("k", lease=60)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and got == []  # the owner is alive: the second waits, sends nothing
    first.put("k", "chat", {"b": 1}, {"text": "answer"})
    waiter.join(10)
    assert got == [{"text": "answer"}]
    # A failed request releases its claim: the waiting worker then claims it and sends it itself.
    assert first.claim("j", lease=60) is None
    got.clear()
    waiter = threading.Thread(target=lambda: got.append(second.claim("j", lease=60)))
    waiter.start()
    first.release("j")
    waiter.join(10)
    assert got == [None]


def test_dead_or_expired_claims_are_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cache = ResponseCache(tmp_path / "c.sqlite")
    db = sqlite3.connect(tmp_path / "c.sqlite")
    now = time.time()
    from sert.cache import HOST

    db.execute("INSERT INTO claims VALUES ('dead', ?, ?, 'x', ?, ?)", (HOST, dead.pid, now, now + 3600))
    db.execute("INSERT INTO claims VALUES ('expired', 'elsewhere', 1, 'x', ?, ?)", (now - 10, now - 1))
    db.execute("INSERT INTO claims VALUES ('remote', 'elsewhere', 1, 'x', ?, ?)", (now, now + 3600))
    db.commit()
    db.close()
    got = {}

    def claim(key):
        thread = threading.Thread(target=lambda: got.update({key: cache.claim(key, lease=60)}), daemon=True)
        thread.start()
        return thread

    for key in ("dead", "expired"):  # taken over: claim returns None, the caller sends the request
        claim(key).join(10)
        assert key in got and got[key] is None, key
    waiter = claim("remote")
    waiter.join(0.5)
    assert waiter.is_alive() and "remote" not in got  # another host's live lease is waited for


def test_cache_dir_is_found_from_the_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "f").write_text("x")
    subprocess.run(["git", "add", "f"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-q", "-m", "f"], cwd=repo,
                   check=True)
    subprocess.run(["git", "worktree", "add", "-q", str(tmp_path / "wt")], cwd=repo, check=True)
    expected = (repo / ".git" / "sert-cache").resolve()
    (repo / "sub").mkdir()
    assert cache_dir({}, repo) == cache_dir({}, repo / "sub") == cache_dir({}, tmp_path / "wt") == expected
    assert cache_dir({"DVC_ROOT": str(tmp_path / "wt")}, tmp_path) == expected  # DVC_ROOT wins over the cwd
    assert cache_dir({"SERT_CACHE_DIR": str(tmp_path / "shared")}, repo) == tmp_path / "shared"
    (tmp_path / "plain").mkdir()
    ceiling = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}
    old = {k: os.environ.get(k) for k in ceiling}
    os.environ.update(ceiling)  # so that no git repository above tmp_path is found
    try:
        assert cache_dir({}, tmp_path / "plain") == (tmp_path / "plain" / ".sert-cache").resolve()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert store_path("teacher.sqlite", expected) == expected / "teacher.sqlite"
    assert store_path(".sert-cache/teacher.jsonl", expected) == expected / "teacher.jsonl"
    assert store_path(str(tmp_path / "abs.sqlite"), expected) == tmp_path / "abs.sqlite"


records = st.lists(st.fixed_dictionaries({
    "key": st.text(min_size=1, max_size=20), "endpoint": st.sampled_from(["chat", "completions"]),
    "request": st.fixed_dictionaries({"prompt": st.text(max_size=80), "max_tokens": st.integers(1, 9)}),
    "response": st.fixed_dictionaries({"text": st.text(max_size=200), "finish_reason": st.sampled_from(["stop", None])}),
}), max_size=12)


@settings(max_examples=25, deadline=None)
@given(records=records)
def test_export_then_merge_is_the_same_store(tmp_path_factory, records):
    import io

    tmp = tmp_path_factory.mktemp("merge")
    a = ResponseCache(tmp / "a.sqlite")
    first = {}
    for r in records:
        a.put(r["key"], r["endpoint"], r["request"], r["response"])
        first.setdefault(r["key"], r["response"])  # the first answer for a key stays
    out = io.StringIO()
    assert a.export(out) == len(first)
    b = ResponseCache(tmp / "b.sqlite")
    lines, skipped = read_export(out.getvalue())
    assert skipped == 0
    assert b.merge(lines) == (len(first), 0) and b.merge(lines) == (0, len(first))
    assert {k: b.get(k) for k in first} == first and len(b) == len(first)
    a.close()
    b.close()
