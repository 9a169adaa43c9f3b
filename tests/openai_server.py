"""A small OpenAI-compatible HTTP server for tests: real sockets on 127.0.0.1, port 0, in a thread.

Implements POST /v1/chat/completions and /v1/completions with deterministic answers to modsum
prompts (computed from the question, like the oracle teacher) and to judge prompts, and injects
faults on demand: ``server.faults[substring] = ["429", "500", None]`` makes the 1st request whose
prompt contains ``substring`` get a 429, the 2nd a 500 and every later one an answer (the last
entry repeats). Faults: 429 (with Retry-After), 500, 503, 400, slow (sleeps past the client
timeout, then answers), malformed (a 200 whose body is not JSON), empty (an empty completion),
drop (closes the connection without a response). Every request is recorded with its cache key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sert.api import request_key

QUESTION = re.compile(r"What is ([\d +]+) mod 10\?")
PATHS = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}


def modsum_terms(prompt: str) -> list[int]:
    match = QUESTION.search(prompt)
    return [int(t) for t in match.group(1).split(" + ")] if match else []


def rationale_for(terms: list[int]) -> str:
    """The oracle teacher's wording (sert/tasks/modsum.py), computed from the question."""
    steps, total = [], terms[0]
    for t in terms[1:]:
        steps.append(f"{total} + {t} = {(total + t) % 10}.")
        total = (total + t) % 10
    return "We add the numbers one at a time and keep the last digit. " + " ".join(steps)


def judge_scores(output: str) -> dict[str, int]:
    """Deterministic judge scores for an output (the tests recompute them to check the means)."""
    h = hashlib.sha256(output.strip().encode()).digest()
    return {"coherence": h[0] % 11, "relevance": h[1] % 11, "logical_consistency": h[2] % 11,
            "completeness": h[3] % 11}


def judge_reply(output: str) -> str:
    """The scores in one of several formats real judges use (exercises robust extraction)."""
    s = judge_scores(output)
    style = hashlib.sha256(output.encode()).digest()[4] % 4
    if style == 0:
        return (f"Coherence: {s['coherence']}\nRelevance: {s['relevance']}\nLogical consistency: "
                f"{s['logical_consistency']}\nCompleteness: {s['completeness']}\nConclusion: fine.")
    if style == 1:
        return (f"**Coherence**: {s['coherence']}/10\n**Relevance**: {s['relevance']}/10\n"
                f"**Logical Consistency**: {s['logical_consistency']}/10\n**Completeness**: "
                f"{s['completeness']}/10\n\nConclusion: The reasoning is clear.")
    if style == 2:
        return (f"Here is my evaluation.\n- Coherence (0-10): {s['coherence']}\n- Relevance (0-10): {s['relevance']}\n"
                f"- Logical consistency (0-10): {s['logical_consistency']}\n- Completeness (0-10): "
                f"{s['completeness']}\nConclusion: acceptable.")
    return (f"coherence - {s['coherence']} out of 10; relevance - {s['relevance']} out of 10;\n"
            f"logical_consistency = {s['logical_consistency']}\ncompleteness: {s['completeness']}.0\n"
            "Conclusion: ok")


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api_key: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.api_key = api_key
        self.faults: dict[str, list[str | None]] = {}
        self.wrong: set[str] = set()  # prompts containing one of these get a wrong answer
        self.retry_after = "0"
        self.slow_seconds = 1.0
        self.delay = 0.0  # seconds before every normal answer (to kill a run part-way)
        self.requests: list[tuple[str, str, dict]] = []  # (key, endpoint, body), in arrival order
        self.times: dict[str, list[float]] = {}  # arrival times per key
        self.in_flight = self.max_in_flight = 0  # requests being handled now / at most so far
        self.counts: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()  # keys that got a normal 200 answer
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reset(self) -> FakeOpenAI:
        """Back to a normal server between tests: no log, faults, wrong answers, waits or delays."""
        self.reset_log()
        self.faults.clear()
        self.wrong.clear()
        self.retry_after, self.slow_seconds, self.delay = "0", 1.0, 0.0
        return self

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()
            self.counts.clear()
            self.answered.clear()
            self.times.clear()
            self.max_in_flight = 0

    def answer(self, endpoint: str, body: dict, prompt: str) -> str:
        if "Student answer:" in prompt:
            return judge_reply(prompt.split("Student answer:", 1)[1].split("\n\nScore the answer", 1)[0])
        terms = modsum_terms(prompt)
        if not terms:
            return "I cannot tell."
        if prompt.rstrip().endswith("Therefore, the answer is"):
            answer = sum(terms) % 10
            if any(w in prompt for w in self.wrong):
                answer = (answer + 1) % 10
            return f" {answer}."
        text = " " + rationale_for(terms)
        if "seed" in body:
            text += f" (sample {body['seed']})"
        return text


class Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to do

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps({"error": {"message": message, "type": "test"}}).encode(), headers)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        with self.server.lock:
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            self._post()
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _post(self) -> None:
        s = self.server
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        endpoint = PATHS.get(self.path)
        if endpoint is None:
            return self._error(404, f"no route {self.path}")
        body = json.loads(raw)
        key = request_key(endpoint, body)
        prompt = (body["prompt"] if endpoint == "completions"
                  else "\n".join(m["content"] for m in body["messages"]))
        with s.lock:
            attempt = s.counts[key]
            s.counts[key] += 1
            s.requests.append((key, endpoint, body))
            s.times.setdefault(key, []).append(time.monotonic())
        if self.headers.get("Authorization") != f"Bearer {s.api_key}":
            given = self.headers.get("Authorization", "")[7:]
            # Like api.openai.com: the error message echoes a masked form of the key.
            return self._error(401, f"Incorrect API key provided: {given[:8]}***{given[-4:]}")
        fault = None
        for substring, plan in s.faults.items():
            if substring in prompt:
                fault = plan[min(attempt, len(plan) - 1)]
                break
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "429":
            return self._error(429, "rate limited", {"Retry-After": s.retry_after})
        if fault in ("500", "503", "400"):
            return self._error(int(fault), "injected failure")
        if fault == "malformed":
            return self._send(200, b'{"id": "x", "choices": [{"mess')
        if fault == "slow":
            time.sleep(s.slow_seconds)
        elif s.delay:
            time.sleep(s.delay)
        text = "" if fault == "empty" else s.answer(endpoint, body, prompt)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                 "total_tokens": len(prompt.split()) + len(text.split())}
        if endpoint == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            obj = "text_completion"
        payload = {"id": "cmpl-test", "object": obj, "created": int(time.time()), "model": body["model"],
                   "choices": [choice], "usage": usage}
        if fault != "slow":
            with s.lock:
                s.answered[key] += 1
        self._send(200, json.dumps(payload).encode())


def start(api_key: str) -> tuple[FakeOpenAI, threading.Thread]:
    server = FakeOpenAI(api_key)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@contextlib.contextmanager
def serving(api_key: str) -> Iterator[FakeOpenAI]:
    """A loopback server accepting ``api_key`` for the duration of the block (a module fixture's body)."""
    server, thread = start(api_key)
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)


def kill_part_way(proc, ready, what: str = "the run", timeout: float = 60.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (a run part-way through its requests); fails,
    with the process's stderr, if it ended before that."""
    import signal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"{what} finished (or died) before it could be killed: " + proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stderr.close()
