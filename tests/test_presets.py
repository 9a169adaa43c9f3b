"""Every shipped preset validates and carries the published protocol, departing from it only where
its table entry says so (and its header states why); the files match the table."""

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from sert.config import Params
from stages.common import load_params
from stages.presets import MODELS, PRESETS, TASKS, all_presets, protocol, render

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "presets").glob("*.yaml"))


def flat(params: dict) -> dict:
    return {f"{section}.{key}": value for section, values in params.items() for key, value in values.items()}


def test_presets_committed_and_in_sync_with_the_table():
    presets = all_presets()
    assert sorted(p.stem for p in FILES) == sorted(presets) == sorted(PRESETS)
    assert {f"{task}-{model}" for task in TASKS for model in MODELS} <= set(presets)   # the paper's six runs
    for path in FILES:
        assert path.read_text(encoding="utf-8") == render(path.stem, presets[path.stem]), \
            f"{path.name} is stale: run `sert presets`"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_preset_is_the_protocol_but_for_its_stated_departures(path):
    """Read back from the file: any key that differs from the paper's protocol is a file location
    or a departure the header states with its reason."""
    entry = PRESETS[path.stem]
    loaded = flat(asdict(load_params(path)))
    paper = flat(protocol(entry.task, entry.model))
    differing = {key for key in paper if loaded[key] != paper[key]}
    assert differing <= set(entry.data) | set(entry.departures)
    assert set(entry.departures) <= differing, "a stated departure must depart from the protocol"
    text = path.read_text(encoding="utf-8")
    for key, (value, reason) in entry.departures.items():
        assert loaded[key] == value and reason and f"#   {key}: {value} -- {reason}\n" in text
    assert "Run: cp presets/" in text


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_preset_validates_with_the_paper_protocol(path):
    p = load_params(path)
    entry = PRESETS[path.stem]
    assert p.task.name == entry.task and p.student.model == entry.model and p.task.seed == 0
    assert p.task.options == {}
    assert (p.sample.branches, p.sample.samples_per_branch, p.sample.top_k, p.sample.top_p) == (5, 5, 10, 0.95)
    assert (p.filter.min_length, p.filter.max_rep2, p.filter.min_perplexity) == (25, 0.2, 5.0)
    assert (p.train.batch_size, p.train.lr, p.train.weight_decay) == (8, 3e-4, 0.0)
    assert p.teacher.only_correct and p.teacher.api.endpoint == "completions"
    assert (p.teacher.temperature, p.teacher.max_tokens) == (0.0, 128)   # Fine-tune-CoT's teacher decoding
    assert p.prompts.zero_shot == "Question: {question}\nAnswer:"
    if p.task.name == "strategyqa":
        # The paper's teacher: Fine-tune-CoT's released text-davinci-002 completions.
        assert p.teacher.backend == "import" and p.teacher.source.endswith("D_strategy_qa.json")
    elif "teacher.backend" not in entry.departures:   # (a stated departure may leave the teacher out)
        assert p.teacher.backend == "openai" and p.teacher.model == "gpt-3.5-turbo-instruct"
    if not entry.departures:   # the paper's runs: whole splits, 20 epochs, room for RD's long outputs
        assert entry.model in MODELS and p.task.subset_train is None and p.task.subset_test is None
        assert p.train.epochs == 20 and p.evaluate.max_new_tokens == 512


def test_default_params_file_validates():
    load_params(ROOT / "params.yaml")


def leaves(params: dict, prefix: str = "") -> dict:
    """Every params key as a dotted path (``task.options`` is one value), with its value."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict) and key != "options":
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


SCHEMA = leaves(asdict(Params()))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_protocol_sets_every_key_of_the_schema(task):
    assert set(leaves(protocol(task, "gpt2"))) == set(SCHEMA)


def test_no_preset_takes_a_class_default(monkeypatch):
    """protocol() reads the schema for its key order only: with every class default replaced by a
    sentinel, no preset value changes."""
    import stages.presets as presets

    sentinel = object()

    def poisoned(params):
        tree = asdict(params)

        def poison(node):
            return {k: poison(v) if isinstance(v, dict) and k != "options" else sentinel for k, v in node.items()}
        return poison(tree)

    before = {name: presets.preset(name) for name in PRESETS}
    monkeypatch.setattr(presets, "asdict", poisoned)
    after = {name: presets.preset(name) for name in PRESETS}
    assert after == before and sentinel not in leaves(after["strategyqa-gpt2"]).values()


def test_default_params_file_sets_every_key():
    """The tiny world (params.yaml) is a complete file too: no key falls back to a class default."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert set(leaves(raw)) == set(SCHEMA)


@pytest.mark.parametrize("path", sorted((ROOT / "results").glob("*/params.yaml")), ids=lambda p: p.parent.name)
def test_committed_result_params_load_with_todays_schema(path):
    """A committed run's params stay readable: `cp results/<run>/params.yaml params.yaml` reruns it."""
    from stages.common import load_params

    load_params(path)
