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

from sert.api import ApiClient, Failure, RequestFailed, failure_summary, run_jobs
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
        # config's own rules (a model, templates, samples vs temperature) are sert.config's
        self.client = ApiClient(config.api, "teacher.api")  # reads the key: fails before any work
        self.failures: list[Failure] = []
        self.n_jobs = 0

    def _request(self, prompt: str, max_tokens: int, temperature: float, seed: int | None) -> dict:
        c = self.config
        body = self.client.body(c.model, prompt, max_tokens, temperature, c.system, seed)
        return self.client.complete(body)

    def _one(self, job: Job) -> Rationale:
        c, ex = self.config, job.example
        # Several samples differ by seed (part of the request, hence of the cache key), so each
        # is its own cached response; one sample at temperature 0 sends no seed at all.
        seed = c.seed + job.sample if c.samples > 1 else None
        prompt = c.reasoning_template.format(question=ex.question)
        reasoning = self._request(prompt, c.max_tokens, c.temperature, seed)
        rationale = reasoning["text"].strip()
        if not rationale:
            raise RequestFailed(f"empty reasoning completion (finish_reason {reasoning['finish_reason']})")
        answer_prompt = c.answer_template.format(prompt=prompt, rationale=" " + rationale, question=ex.question)
        # The answer step is greedy, as in Fine-tune-CoT: one answer per rationale.
        answered = self._request(answer_prompt, c.answer_max_tokens, 0.0, None)
        answer_text = answered["text"].strip()
        if not answer_text:
            raise RequestFailed(f"empty answer completion (finish_reason {answered['finish_reason']})")
        # The answer clause as the student will see it: "<rationale> Therefore, the answer is X."
        suffix = c.answer_template.rsplit("{rationale}", 1)[-1].strip()
        text = f"{rationale} {suffix} {answer_text}"
        answer = self.task.extract_answer(f"{suffix} {answer_text}")
        return Rationale(ex.id, text, answer, self.task.is_correct(answer, ex))

    def rationales(self, examples: list[Example]) -> list[Rationale]:
        jobs = [Job(ex, s) for ex in examples for s in range(self.config.samples)]
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
