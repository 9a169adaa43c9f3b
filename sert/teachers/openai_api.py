"""The ``openai`` teacher: Fine-tune-CoT's two-step zero-shot CoT against any OpenAI-compatible API.

Per question (and per sample, for "diverse reasoning"):
  1. reasoning request: ``reasoning_template`` ("Q: {question}\\nA: Let's think step by step.")
     -> the rationale;
  2. answer request: ``answer_template`` ("{prompt}{rationale}\\nTherefore, the answer is")
     -> the answer, extracted and scored by the task's own ``extract_answer``/``is_correct``.
Chat endpoints get each prompt as one user message (optionally after a system message), so
both endpoints see the same text. Requests go through ``sert.api`` (cache, retries, budget).
"""

from __future__ import annotations

from dataclasses import dataclass

from sert.api import ApiClient, Failure, RequestFailed, failure_summary, request_body, request_key, run_jobs
from sert.cache import ResponseCache
from sert.tasks import Example, Task
from sert.config import TeacherConfig
from sert.teachers.base import Rationale, Teacher
from sert.teachers.registry import register_teacher


@dataclass
class Job:
    example: Example
    sample: int


@register_teacher
class OpenAITeacher(Teacher):
    """Zero-shot-CoT rationales from an OpenAI-compatible endpoint (see the module docstring)."""

    name = "openai"

    def __init__(self, config: TeacherConfig, task: Task) -> None:
        super().__init__(config, task)
        # config's own rules (a model, templates, samples vs temperature) are sert.config's.
        # The client (which reads the key) is made by ``rationales``, before any request: the
        # teacher row and the dry run need no key.
        self.client: ApiClient | None = None
        self.failures: list[Failure] = []
        self.n_jobs = 0

    def jobs(self, examples: list[Example]) -> list[Job]:
        return [Job(ex, s) for ex in examples for s in range(self.config.samples)]

    def _reasoning(self, job: Job) -> tuple[str, dict]:
        """The reasoning step's prompt and request body."""
        c = self.config
        # Several samples differ by seed (part of the request, hence of the cache key), so each
        # is its own cached response; one sample at temperature 0 sends no seed at all.
        seed = c.seed + job.sample if c.samples > 1 else None
        prompt = c.reasoning_template.format(question=job.example.question)
        return prompt, request_body(c.api, c.model, prompt, c.max_tokens, c.temperature, c.system, seed)

    def _answer(self, job: Job, prompt: str, rationale: str) -> dict:
        """The answer step's request body: greedy, as in Fine-tune-CoT (one answer per rationale)."""
        c = self.config
        answer_prompt = c.answer_template.format(prompt=prompt, rationale=" " + rationale, question=job.example.question)
        return request_body(c.api, c.model, answer_prompt, c.answer_max_tokens, 0.0, c.system, None)

    def plan(self, examples: list[Example], cache: ResponseCache) -> dict:
        """Dry run: at most how many requests ``rationales`` would send with ``cache`` as it is
        (sends none, needs no key). A reasoning step not in the cache counts with its answer step
        (2 requests: the answer's body holds the rationale, unknown until then, and may turn out
        cached); retries are not counted (each request may take up to ``api.max_retries`` more)."""
        endpoint = self.config.api.endpoint
        jobs = self.jobs(examples)
        to_send = 0
        for job in jobs:
            prompt, body = self._reasoning(job)
            reasoning = cache.get(request_key(endpoint, body))
            if reasoning is None:
                to_send += 2
            elif reasoning["text"].strip():
                answer = self._answer(job, prompt, reasoning["text"].strip())
                to_send += cache.get(request_key(endpoint, answer)) is None
        return {"jobs": len(jobs), "requests": 2 * len(jobs), "to_send": to_send}

    def _one(self, job: Job) -> Rationale:
        c, ex = self.config, job.example
        assert self.client is not None
        prompt, body = self._reasoning(job)
        reasoning = self.client.complete(body)
        rationale = reasoning["text"].strip()
        if not rationale:
            raise RequestFailed(f"empty reasoning completion (finish_reason {reasoning['finish_reason']})")
        answered = self.client.complete(self._answer(job, prompt, rationale))
        answer_text = answered["text"].strip()
        if not answer_text:
            raise RequestFailed(f"empty answer completion (finish_reason {answered['finish_reason']})")
        # The answer clause as the student will see it: "<rationale> Therefore, the answer is X."
        suffix = c.answer_template.rsplit("{rationale}", 1)[-1].strip()
        text = f"{rationale} {suffix} {answer_text}"
        answer = self.task.extract_answer(f"{suffix} {answer_text}")
        return Rationale(ex.id, text, answer, self.task.is_correct(answer, ex))

    def rationales(self, examples: list[Example]) -> list[Rationale]:
        self.client = ApiClient(self.config.api, "teacher.api")  # reads the key: fails before any request
        jobs = self.jobs(examples)
        self.n_jobs = len(jobs)
        results = run_jobs(jobs, self._one, self.client.cfg.concurrency, desc=f"teacher {self.config.model}")
        self.failures = [r for r in results if isinstance(r, Failure)]
        out = []
        for job, r in zip(jobs, results):
            if isinstance(r, Rationale):
                record = r.to_json()
                out.append(_SampledRationale(**record, sample=job.sample))
        return out

    def extra_metrics(self) -> dict:
        return {
            "model": self.config.model, "endpoint": self.client.cfg.endpoint, "samples": self.config.samples,
            "jobs": self.n_jobs,
            "usage": self.client.usage.to_json(), "cache_entries": len(self.client.cache),
            "failed": len(self.failures), "failure_reasons": failure_summary(self.failures),
            "failures": [{"id": f.job.example.id, "sample": f.job.sample, "reason": f.reason}
                         for f in self.failures],
        }


@dataclass
class _SampledRationale(Rationale):
    """A rationale with its sample index (``data/teacher.jsonl`` gains a ``sample`` field)."""

    sample: int = 0
