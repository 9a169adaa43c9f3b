"""The comparisons that matter, between our variants (paired, on the same test questions) and
between the paper's published accuracies (unpaired: all that printed percentages allow).

A difference is called beyond noise only when its 95% interval excludes 0 and, for the paired
comparisons, McNemar's exact p is below 0.05; every other difference is reported as within noise,
never as an effect.
"""

from __future__ import annotations

from sert.errors import DataError
from sert.published import Published, published_count
from sert.stats import CONFIDENCE, N_RESAMPLES, compare_paired, excludes_zero, newcombe_difference, rounded

PAIRS = (("sert", "base"), ("sert_rd", "rd"), ("rd", "finetune"), ("sert_rd", "sert"))
"""(a, b) compared as a - b: what self-training adds to the base model, what it adds before
distillation, distillation against label-only finetuning, and what distillation adds after SERT."""

ALPHA = 0.05
"""A paired difference with McNemar's p at or above this is within noise."""

PAIRED_TEST = (f"McNemar exact test, two-sided; ci: paired percentile bootstrap over questions, "
               f"{CONFIDENCE:.0%}, {N_RESAMPLES:,} resamples")
"""The ``test`` field of each entry of metrics/compare.json."""


def pair_key(a: str, b: str) -> str:
    """The key of the comparison a - b in metrics/compare.json, e.g. ``sert_vs_base``."""
    return f"{a}_vs_{b}"


def _outcomes(records: list[dict], source: str, field: str) -> dict:
    outcomes = {}
    for r in records:
        if r["id"] in outcomes:
            raise DataError(f"{source}: question id {r['id']!r} appears twice")
        outcomes[r["id"]] = bool(r[field])
    return outcomes


def compare_variants(predictions: dict[str, list[dict]], pairs=PAIRS, metric: str = "accuracy",
                     field: str = "correct", source: str = "data/predictions/{}.jsonl") -> dict[str, dict]:
    """metrics/compare.json: per pair whose variants both have predictions, in ``pairs`` order and
    keyed by ``pair_key(a, b)`` (a dict, so that ``dvc metrics show`` and ``dvc exp show`` show its
    values; they skip lists), ``{"a", "b", "metric", "difference", "ci", "p_value", "test", "n",
    "a_only", "b_only"}``.

    ``predictions`` maps a variant to its per-question records (``id`` and ``field``), matched by
    id; ``source`` names a variant's file in errors. Variants scored on different questions are an error.
    """
    out = {}
    for a, b in pairs:
        if a not in predictions or b not in predictions:
            continue
        ra = _outcomes(predictions[a], source.format(a), field)
        rb = _outcomes(predictions[b], source.format(b), field)
        if ra.keys() != rb.keys():
            only = sorted(ra.keys() - rb.keys(), key=str) or sorted(rb.keys() - ra.keys(), key=str)
            raise DataError(f"{source.format(a)} and {source.format(b)}: not the same test questions "
                            f"({len(ra.keys() - rb.keys())} ids only in {a}, {len(rb.keys() - ra.keys())} only in "
                            f"{b}, e.g. {only[0]!r}); evaluate both on the same test split")
        ids = list(ra)
        c = compare_paired([ra[i] for i in ids], [rb[i] for i in ids])
        out[pair_key(a, b)] = {"a": a, "b": b, "metric": metric, "difference": round(c.difference, 6),
                               "ci": rounded(c.ci), "p_value": float(f"{c.p_value:.6g}"), "test": PAIRED_TEST,
                               "n": c.n, "a_only": c.a_only, "b_only": c.b_only}
    return out


def paired_reading(c: dict) -> str:
    """How a paired comparison may be described: beyond noise, or within noise and why."""
    reasons = [r for r, bad in (("interval covers 0", not excludes_zero(c["ci"])),
                                (f"p >= {ALPHA:g}", c["p_value"] >= ALPHA)) if bad]
    if reasons:
        return "within noise (" + ", ".join(reasons) + ")"
    return ("higher" if c["difference"] > 0 else "lower") + ", beyond noise"


def paper_comparisons(published: dict[str, Published], n: int, pairs=PAIRS) -> list[dict]:
    """The paper's own differences (accuracy in percent) for each pair it reports both halves of,
    with Newcombe's unpaired 95% interval at ``n`` test questions per method (counts nearest to the
    printed percentages): ``{"a", "b", "accuracy_a", "accuracy_b", "difference", "ci", "n"}``, in points."""
    out = []
    for a, b in pairs:
        if a not in published or b not in published:
            continue
        pa, pb = published[a].accuracy, published[b].accuracy
        low, high = newcombe_difference(published_count(pa, n), n, published_count(pb, n), n)
        out.append({"a": a, "b": b, "accuracy_a": pa, "accuracy_b": pb, "difference": round(pa - pb, 2),
                    "ci": [round(100 * low, 2), round(100 * high, 2)], "n": n})
    return out


def paper_reading(c: dict) -> str:
    """Whether a published difference can be told apart from noise by its unpaired interval."""
    if not excludes_zero(c["ci"]):
        return "within noise (interval covers 0)"
    return ("higher" if c["difference"] > 0 else "lower") + ", beyond noise"
