"""Requests to an OpenAI-compatible API that never pay twice: cache, concurrency, retries, budget.

Shared by the ``openai`` teacher (``sert.teachers.openai_api``) and the LLM judge (``sert.judge``).

* ``ResponseCache`` (``sert.cache``): a SQLite store of responses keyed by ``request_key`` (a hash
  of the endpoint and the full request body: model, messages or prompt, decoding), shared by every
  workspace of the repository and safe for parallel workers. Each response is stored as soon as it
  arrives, so a killed process loses at most the requests that were in flight, and a rerun resends
  nothing it has. Before sending, a request is *claimed*: a second worker that needs the same one
  waits for its answer instead of sending it too.
* ``ApiClient``: the official ``openai`` client with its own retries off (``max_retries=0``) and
  ours on: exponential backoff with full jitter on 408, 429, 5xx, timeouts, dropped connections
  and malformed bodies, honouring ``Retry-After``. The client retries the same errors (and 409),
  but inside one ``create`` call: it does not say how many attempts a request took, so the budget
  (a worst-case reservation per attempt) and the usage and error counts could not see them; its
  backoff is fixed (0.5 s doubling to 8 s, not ``backoff_base``/``backoff_max``); it gives up at
  once on a ``Retry-After`` over two minutes; and it never retries a 200 whose body is not a
  completion.
* ``run_jobs``: a thread pool (``concurrency`` requests in flight) with a tqdm progress bar; a
  job that fails is returned as a ``Failure`` with its reason, never dropped.

The API key is read from the environment only and is redacted from every reason we record.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from sert.cache import ResponseCache, store_path
from sert.config import ApiConfig
from sert.errors import ApiError, ParamsError

__all__ = ["ApiClient", "BudgetExhausted", "Failure", "RequestFailed", "ResponseCache", "Usage", "failure_summary",
           "read_api_key", "redact", "request_body", "request_key", "run_jobs"]

class RequestFailed(ApiError):
    """One request (or job) failed for good; the message is the recorded reason."""


class BudgetExhausted(RequestFailed):
    """Sending the next request could exceed the budget; nothing more is sent."""


def read_api_key(cfg: ApiConfig, prefix: str) -> str:
    """The key from the environment; a clear error (naming the variable, never a value) if unset."""
    key = os.environ.get(cfg.api_key_env, "").strip()
    if not key:
        raise ParamsError(
            f"{prefix}.api_key_env: environment variable {cfg.api_key_env} is not set; export the API key "
            f"there (local servers such as vLLM or Ollama accept any non-empty value)"
        )
    return key


def redact(text: str, secret: str | None) -> str:
    """``text`` with the key, and anything shaped like an OpenAI key, replaced by ``***``."""
    if secret:
        text = text.replace(secret, "***")
        # Providers echo a masked key ("sk-abc1***wxyz"): drop any long-enough piece of ours too.
        for piece in {secret[:8], secret[-8:]} if len(secret) >= 16 else ():
            text = text.replace(piece, "***")
    return re.sub(r"\bsk-[A-Za-z0-9_\-*]{6,}", "sk-***", text)


def request_key(endpoint: str, body: dict[str, Any]) -> str:
    """Cache key: sha256 of the endpoint and the full request body (canonical JSON)."""
    blob = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def request_body(cfg: ApiConfig, model: str, prompt: str, max_tokens: int, temperature: float,
                 system: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The request body for the configured endpoint (what is sent, and what is hashed); needs no
    key, so a dry run can look requests up in the cache."""
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "temperature": temperature}
    if cfg.endpoint == "chat":
        messages = [{"role": "system", "content": system}] if system else []
        body["messages"] = messages + [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = (system + "\n\n" + prompt) if system else prompt
    if seed is not None:
        body["seed"] = seed
    return body


def open_cache(cfg: ApiConfig) -> ResponseCache:
    """The store ``cfg.cache`` names (``sert.cache.store_path``: in the repository's cache directory)."""
    return ResponseCache(store_path(cfg.cache))


@dataclass
class Usage:
    """Token and request counts; ``sent``/tokens are what this run paid, ``cached`` what it reused."""

    requests_sent: int = 0
    responses: int = 0
    retries: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    reserved_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "requests_sent": self.requests_sent, "responses": self.responses, "retries": self.retries,
            "cache_hits": self.cache_hits, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "cached_completion_tokens": self.cached_completion_tokens, "errors": dict(sorted(self.errors.items())),
        }


def _retry_after(err: Exception) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header, if the server sent one."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class ApiClient:
    """Cached, budgeted, retried single requests; safe to call from many threads."""

    def __init__(self, cfg: ApiConfig, prefix: str, cache: ResponseCache | None = None) -> None:
        self.cfg, self.prefix = cfg, prefix
        self._key = read_api_key(cfg, prefix)  # before any work: a missing key fails here
        self.cache = cache if cache is not None else open_cache(cfg)
        # Imported here: the openai package costs ~2 s of imports that offline stages would pay.
        import openai

        self.client = openai.OpenAI(api_key=self._key, base_url=cfg.base_url, max_retries=0, timeout=cfg.timeout)
        self.usage = Usage()
        self._lock = threading.Lock()
        self._stopped: str | None = None

    def redact(self, text: str) -> str:
        return redact(text, self._key)

    def body(self, model: str, prompt: str, max_tokens: int, temperature: float, system: str | None = None,
             seed: int | None = None) -> dict[str, Any]:
        """``request_body`` for this client's endpoint."""
        return request_body(self.cfg, model, prompt, max_tokens, temperature, system, seed)

    # -- budget ---------------------------------------------------------------
    @staticmethod
    def _worst_case_tokens(body: dict[str, Any]) -> int:
        # Byte-level BPE never uses more tokens than bytes; chat adds a few tokens per message.
        text = body.get("prompt") or "".join(m["content"] for m in body.get("messages", []))
        return len(text.encode("utf-8")) + 8 * len(body.get("messages", [])) + 8 + body["max_tokens"]

    def _reserve(self, worst: int) -> None:
        cfg = self.cfg
        with self._lock:
            if self._stopped is None:
                if cfg.max_requests is not None and self.usage.requests_sent + 1 > cfg.max_requests:
                    self._stopped = f"budget exhausted: {self.prefix}.max_requests={cfg.max_requests}"
                elif cfg.max_tokens_total is not None and (
                        self.usage.prompt_tokens + self.usage.completion_tokens + self.usage.reserved_tokens
                        + worst > cfg.max_tokens_total):
                    self._stopped = f"budget exhausted: {self.prefix}.max_tokens_total={cfg.max_tokens_total}"
            if self._stopped is not None:
                raise BudgetExhausted(self._stopped)
            self.usage.requests_sent += 1
            self.usage.reserved_tokens += worst

    def _settle(self, worst: int, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.usage.reserved_tokens -= worst
            self.usage.prompt_tokens += prompt_tokens
            self.usage.completion_tokens += completion_tokens

    def _count_error(self, reason: str) -> None:
        with self._lock:
            self.usage.errors[reason] = self.usage.errors.get(reason, 0) + 1

    # -- one request ------------------------------------------------------------
    def complete(self, body: dict[str, Any]) -> dict:
        """``{"text", "finish_reason", "prompt_tokens", "completion_tokens"}`` for ``body``, from the
        cache or the API; raises ``RequestFailed`` with a (redacted) reason when it gives up."""
        key = request_key(self.cfg.endpoint, body)
        hit = self.cache.get(key)
        if hit is None:
            # Another worker (a parallel experiment, another thread) may have this request in
            # flight: wait for its answer rather than pay for it twice.
            hit = self.cache.claim(key, self._lease())
        if hit is not None:
            with self._lock:
                self.usage.cache_hits += 1
                self.usage.cached_prompt_tokens += hit.get("prompt_tokens", 0)
                self.usage.cached_completion_tokens += hit.get("completion_tokens", 0)
            return hit
        answered = False
        try:
            response = self._send(key, body)  # stores the answer and drops the claim together
            answered = True
            return response
        finally:
            if not answered:  # failed for good (or interrupted): a waiting worker may try it itself
                self.cache.release(key)

    def _lease(self, extra: float = 0.0) -> float:
        # How long a claim holds without a refresh: one attempt and its backoff, with room to spare.
        return self.cfg.timeout + self.cfg.backoff_max + 30.0 + extra

    def _send(self, key: str, body: dict[str, Any]) -> dict:
        endpoint = self.cfg.endpoint
        import openai  # already loaded by __init__; here for its exception classes

        worst = self._worst_case_tokens(body)
        reason = "no attempt"
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                with self._lock:
                    self.usage.retries += 1
                self.cache.refresh(key, self._lease())
            self._reserve(worst)
            wait: float | None = None
            try:
                create = self.client.chat.completions.create if endpoint == "chat" else self.client.completions.create
                raw = create(**body)
                try:
                    choice = raw.choices[0]
                    text = (choice.message.content if endpoint == "chat" else choice.text) or ""
                    usage = raw.usage
                    response = {"text": text, "finish_reason": choice.finish_reason,
                                "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
                                "completion_tokens": getattr(usage, "completion_tokens", 0) or 0}
                except (AttributeError, IndexError, TypeError) as err:  # a 200 that is not a completion
                    raise ValueError(f"no completion in the response ({type(err).__name__})") from None
            except openai.APITimeoutError:  # subclass of APIConnectionError: test it first
                self._settle(worst, 0, 0)
                reason = f"timeout after {self.cfg.timeout:g}s"
            except openai.APIConnectionError as err:
                self._settle(worst, 0, 0)
                reason = "connection error: " + self.redact(str(err.__cause__ or err))[:200]
            except openai.APIStatusError as err:
                self._settle(worst, 0, 0)
                detail = err.body if isinstance(err.body, dict) else {}
                message = detail.get("message") if isinstance(detail.get("message"), str) else err.message
                reason = f"HTTP {err.status_code}: " + self.redact(str(message))[:200]
                if err.status_code != 429 and err.status_code < 500 and err.status_code != 408:
                    self._count_error(f"HTTP {err.status_code}")
                    raise RequestFailed(reason) from None  # 400/401/404...: retrying cannot help
                wait = _retry_after(err)
            except (openai.APIResponseValidationError, ValueError) as err:
                # A 200 whose body is not a completion (malformed JSON, no choices): a broken proxy.
                self._settle(worst, 0, 0)
                reason = "malformed response: " + self.redact(type(err).__name__ + ": " + str(err))[:200]
            else:
                self._settle(worst, response["prompt_tokens"], response["completion_tokens"])
                self.cache.put(key, endpoint, body, response)
                with self._lock:
                    self.usage.responses += 1
                return response
            self._count_error(reason.split(":")[0] if not reason.startswith("timeout") else "timeout")
            if attempt < self.cfg.max_retries:
                backoff = random.uniform(0, min(self.cfg.backoff_max, self.cfg.backoff_base * 2**attempt))
                pause = max(backoff, wait or 0.0)
                if pause > self.cfg.backoff_max:  # a long Retry-After: keep the claim through it
                    self.cache.refresh(key, self._lease(pause))
                time.sleep(pause)
        raise RequestFailed(f"{reason} (gave up after {self.cfg.max_retries + 1} attempts)")


@dataclass
class Failure:
    """A job that ended without a result, and why."""

    job: Any
    reason: str


def run_jobs(jobs: Iterable[Any], work: Callable[[Any], Any], concurrency: int, desc: str) -> list[Any]:
    """``work(job)`` for every job on ``concurrency`` threads, in job order; a job whose ``work``
    raises ``RequestFailed`` comes back as a ``Failure``. A progress bar shows rate and ETA."""
    jobs = list(jobs)
    results: list[Any] = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        with tqdm(total=len(jobs), desc=desc, unit="q", mininterval=1.0) as bar:
            futures = {pool.submit(work, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except RequestFailed as err:
                    results[i] = Failure(jobs[i], str(err))
                bar.update(1)
    finally:
        # On Ctrl-C or an unexpected error, queued jobs must not keep sending requests; what was
        # already answered is in the cache for the next run.
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def failure_summary(failures: list[Failure]) -> dict[str, int]:
    """Failure counts by reason, with per-request details (numbers, timeouts) kept."""
    counts: dict[str, int] = {}
    for f in failures:
        counts[f.reason] = counts.get(f.reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
