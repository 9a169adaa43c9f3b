"""The LLM judge: scores each test output 0-10 for coherence, relevance, logical consistency and
completeness (the paper's "reasoning detail" evaluation, judged there by Llama-3-8B-Instruct).

One request per (variant, question) through ``sert.api`` (cache, concurrency, retries, budget);
``parse_scores`` reads the four scores from whatever the judge wrote, and a reply without all
four is a recorded failure, not a zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sert.api import ApiClient, Failure, RequestFailed, failure_summary, request_body, request_key, run_jobs
from sert.cache import ResponseCache
from sert.config import JudgeConfig
from sert.stats import bootstrap_mean, rounded

CRITERIA = ("coherence", "relevance", "logical_consistency", "completeness")
CRITERIA_LABELS = {"coherence": "Coherence", "relevance": "Relevance",
                   "logical_consistency": "Logical consistency", "completeness": "Completeness"}
_NAMES = {"coherence": r"coheren(?:ce|t)", "relevance": r"relevan(?:ce|t)",
          "logical_consistency": r"logical(?:[\s_-]*consistency)?", "completeness": r"complete(?:ness)?"}
# "Coherence (0-10): 8" must not read the 0 of the scale: drop scale mentions before parsing.
_SCALE = re.compile(r"\(?\s*(?:from\s+)?(?<![\d.])0\s*(?:-|–|to)\s*10\s*\)?", re.IGNORECASE)
_NUMBER = r"(\d+(?:\.\d+)?)(?:\s*(?:/|out\s+of)\s*10)?"

def _patterns(name: str) -> list[re.Pattern[str]]:
    # Preferred: the name at the start of a line ("**Coherence**: 8", "- Relevance - 7/10");
    # fallback: the name anywhere followed closely by a number ("coherence is 8").
    gap = r"[^\w\n]{0,12}?(?:score\W{0,4})?(?:is\s+|of\s+)?"
    return [re.compile(rf"(?im)^[^\w\n]*{_NAMES[name]}\b{gap}{_NUMBER}"),
            re.compile(rf"(?i)\b{_NAMES[name]}\b{gap}{_NUMBER}")]


_PATTERNS = {name: _patterns(name) for name in CRITERIA}


def parse_scores(text: str) -> dict[str, float] | None:
    """The four scores in ``text`` (each in [0, 10]), or None unless all four are found."""
    text = _SCALE.sub(" ", text)
    scores = {}
    for name in CRITERIA:
        for pattern in _PATTERNS[name]:
            values = [float(m.group(1)) for m in pattern.finditer(text)]
            values = [v for v in values if 0 <= v <= 10]
            if values:
                scores[name] = values[0]
                break
        else:
            return None
    return scores


@dataclass
class Item:
    """One output to judge."""

    variant: str
    id: str
    question: str
    output: str


def _aggregate(scored: list[dict], n: int, failed: int) -> dict:
    out: dict = {"n": n, "scored": len(scored), "failed": failed}
    if scored:
        means = {c: sum(s[c] for s in scored) / len(scored) for c in CRITERIA}
        out["mean"] = {c: round(v, 3) for c, v in means.items()}
        out["overall"] = round(sum(means.values()) / len(CRITERIA), 3)
        # 95% percentile bootstrap over the scored outputs of each one's mean of the four criteria.
        out["overall_ci"] = rounded(bootstrap_mean([sum(s[c] for c in CRITERIA) / len(CRITERIA) for s in scored]))
        # Score distribution per criterion: counts of each integer score 0..10 (rounded half up).
        out["distribution"] = {c: [sum(1 for s in scored if int(s[c] + 0.5) == k) for k in range(11)]
                               for c in CRITERIA}
    return out


def judge_body(config: JudgeConfig, item: Item) -> dict:
    """The request body that judges ``item``."""
    prompt = config.template.replace("{question}", item.question).replace("{output}", item.output.strip())
    return request_body(config.api, config.model, prompt, config.max_tokens, config.temperature, config.system)


def plan(config: JudgeConfig, items: list[Item], cache: ResponseCache) -> dict:
    """Dry run: how many of the judge's requests for ``items`` are not in ``cache`` (sends none,
    needs no key; retries not counted)."""
    to_send = sum(cache.get(request_key(config.api.endpoint, judge_body(config, i))) is None for i in items)
    return {"jobs": len(items), "requests": len(items), "to_send": to_send}


class Judge:
    def __init__(self, config: JudgeConfig) -> None:
        """``config`` as checked by ``sert.config.JudgeConfig`` (a model, a template with both
        placeholders); the key is read from the environment here, before any work."""
        self.config = config
        self.client = ApiClient(config.api, "judge.api")

    def _one(self, item: Item) -> dict:
        reply = self.client.complete(judge_body(self.config, item))
        scores = parse_scores(reply["text"])
        if scores is None:
            raise RequestFailed("judge reply without all four scores")
        return {"variant": item.variant, "id": item.id, "scores": scores, "reply": reply["text"]}

    def run(self, items: list[Item]) -> tuple[list[dict], dict]:
        """Per-output records and metrics (per-variant means and distributions, usage, failures)."""
        results = run_jobs(items, self._one, self.client.cfg.concurrency, desc=f"judge {self.config.model}")
        failures = [r for r in results if isinstance(r, Failure)]
        records = []
        for item, r in zip(items, results):
            if isinstance(r, Failure):
                records.append({"variant": item.variant, "id": item.id, "scores": None, "failure": r.reason})
            else:
                records.append(r)
        variants: dict[str, dict] = {}
        for name in dict.fromkeys(i.variant for i in items):
            mine = [r for r in records if r["variant"] == name]
            scored = [r["scores"] for r in mine if r["scores"] is not None]
            variants[name] = _aggregate(scored, len(mine), len(mine) - len(scored))
        metrics = {"enabled": True, "model": self.config.model, "variants": variants, "n": len(items),
                   "failed": len(failures), "failure_reasons": failure_summary(failures),
                   "usage": self.client.usage.to_json()}
        return records, metrics
