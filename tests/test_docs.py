"""The documentation: the site builds with ``mkdocs build --strict``, the params reference is what the
config classes declare, the Quick start is what CI runs, the commands the docs show name real
commands and real params keys, and no page, docstring or comment tells history. (The experiment
commands between the markers in docs/experiments.md are run as written by tests/test_workflow.py.)"""

import dataclasses
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml
from conftest import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
"""Every page whose commands are checked: the README and the site's pages."""


def quick_start(path) -> dict[str, str]:
    """The two Quick start commands of a page: {"pipeline": ..., "tests": ...}."""
    text = path.read_text(encoding="utf-8")
    found = {}
    for key, label in (("pipeline", "Run the pipeline:"), ("tests", "Run the tests:")):
        match = re.search(re.escape(label) + r"\s*```bash\n(.*?)\n```", text, flags=re.S)
        assert match, f"{path.name}: no ```bash block after {label!r}"
        found[key] = match.group(1).strip()
    return found


def test_ci_runs_exactly_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line for line in script if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == [quick_start(ROOT / "README.md")["tests"]]


def test_docs_home_shows_the_readme_quick_start():
    assert quick_start(DOCS / "index.md") == quick_start(ROOT / "README.md")


# -- the params reference --------------------------------------------------------------------------
def generator():
    spec = importlib.util.spec_from_file_location("gen_params", DOCS / "gen_params.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_params_reference_is_the_generated_page():
    committed = (DOCS / "params.md").read_text(encoding="utf-8")
    assert committed == generator().render(), "docs/params.md is stale: run `python docs/gen_params.py`"


def leaf_keys(data: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in data.items():
        key = f"{prefix}{name}"
        keys += leaf_keys(value, f"{key}.") if isinstance(value, dict) and value else [key]
    return keys


def test_params_reference_describes_every_key_of_params_yaml():
    page = (DOCS / "params.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \|.*\| ([^|]*) \|$", page, flags=re.M)}
    keys = leaf_keys(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")))
    assert len(keys) > 100
    missing = [k for k in keys if k not in rows]
    undescribed = [k for k in keys if k in rows and not rows[k].strip()]
    assert not missing and not undescribed, (missing, undescribed)


# -- the site ----------------------------------------------------------------------------------------
def mkdocs_build(config_dir, site_dir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                          cwd=config_dir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # Material's end-of-life banner


def test_site_builds_strictly(tmp_path):
    result = mkdocs_build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    for page in DOCS.glob("*.md"):
        built = tmp_path / "site" / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} is not in the site (missing from mkdocs.yml's nav?)"


def test_a_broken_link_fails_the_strict_build(tmp_path):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs" / "tasks.md", "a", encoding="utf-8") as page:
        page.write("\nSee [the metrics](metrics.md#no-such-heading) and [a page](no-such-page.md).\n")
    result = mkdocs_build(tmp_path, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr and "no-such-heading" in result.stderr


# -- the commands the docs show ------------------------------------------------------------------------
def shown_commands() -> list[tuple[str, list[str]]]:
    """(page, words) of every command in the pages' ```bash blocks: continuation lines joined,
    comments dropped, ``a && b`` split into its commands."""
    commands = []
    for path in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                while words:
                    cut = words.index("&&") if "&&" in words else len(words)
                    commands.append((path.name, words[:cut]))
                    words = words[cut + 1:]
    return commands


def is_params_key(key: str) -> bool:
    """``key`` names a field of params.yaml (``task.options.<task>.<option>`` included)."""
    from sert.config import Params
    from sert.tasks import TASKS

    parts = key.split(".")
    if parts[:2] == ["task", "options"]:
        task = TASKS.get(parts[2]) if len(parts) == 4 else None
        return task is not None and parts[3] in {f.name for f in dataclasses.fields(task.Options)}
    cls = Params
    for part in parts:
        fields = getattr(cls, "__pydantic_fields__", {})
        if part not in fields:
            return False
        cls = fields[part].annotation
    return True


def sert_arguments(words: list[str]) -> list[str] | None:
    """What follows the ``sert`` command in ``words`` (also as ``python -m stages.cli``, and as the
    program of ``torchrun ... --no-python sert``), else None."""
    if words and words[0] == "sert":
        return words[1:]
    if "--no-python" in words and words[words.index("--no-python") + 1:][:1] == ["sert"]:
        return words[words.index("--no-python") + 2:]
    if "stages.cli" in words and words[words.index("stages.cli") - 1] == "-m":
        return words[words.index("stages.cli") + 1:]
    return None


def test_the_docs_show_commands():
    """The parser finds what the pages show (so the checks below have something to check)."""
    commands = [words for _, words in shown_commands()]
    assert ["sweep", "run", "0", "1", "2", "--param", "train.seed"] in [sert_arguments(w) for w in commands]
    assert ["train-sert"] in [sert_arguments(w) for w in commands]  # python -m stages.cli, under accelerate
    assert ["train", "finetune"] in [sert_arguments(w) for w in commands if "torchrun" in w]
    assert ["dvc", "commit", "-f", "train@finetune"] in commands
    assert ["dvc", "exp", "run", "-S", "sert.rounds=3"] in commands
    assert sum(1 for w in commands if w[:3] == ["dvc", "exp", "run"]) >= 10


def test_shown_sert_commands_exist():
    from stages.cli import GROUPS, STAGES, load_group

    sweep = load_group("sweep")
    for page, words in shown_commands():
        args = sert_arguments(words)
        if args is None:
            continue
        assert args and args[0] in (*STAGES, *GROUPS, "tasks"), f"{page}: {shlex.join(words)}"
        if args[0] == "sweep":
            command = sweep.commands.get(args[1])
            assert command is not None, f"{page}: {shlex.join(words)}"
            options = {opt for param in command.params for opt in param.opts}
            for word in args[2:]:
                assert not word.startswith("--") or word in options, f"{page}: {word} in {shlex.join(words)}"
            for i, word in enumerate(args[:-1]):
                if word == "--param":
                    assert is_params_key(args[i + 1]), f"{page}: {args[i + 1]} in {shlex.join(words)}"


def test_shown_dvc_commits_name_real_stages():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    names = {f"{name}@{key}" for name, stage in stages.items() for key in stage.get("foreach", {})} | set(stages)
    for page, words in shown_commands():
        if words[:2] == ["dvc", "commit"]:
            targets = [w for w in words[2:] if not w.startswith("-")]
            assert targets and set(targets) <= names, f"{page}: {shlex.join(words)}"


def test_shown_experiments_set_real_params_keys():
    for page, words in shown_commands():
        if words[:3] != ["dvc", "exp", "run"]:
            continue
        for flag, value in zip(words, words[1:]):
            if flag in ("-S", "--set-param"):
                key = value.split("=", 1)[0]
                assert "=" in value and is_params_key(key), f"{page}: {key} in {shlex.join(words)}"


def test_is_params_key_tells_real_keys_from_typos():
    assert is_params_key("filter.max_rep2") and is_params_key("teacher.api.cache")
    assert is_params_key("task.options.modsum.n_terms")
    assert not is_params_key("filter.max_rep") and not is_params_key("teacher.api.cash")
    assert not is_params_key("task.options.modsum.terms") and not is_params_key("task.options.nosuch.n_train")


# -- docs say what is ------------------------------------------------------------------------------
HISTORY = re.compile(r"\bissues? #?\d+|\b(?:this|the previous) commit\b|\bthe old rule\b|\bbefore the move\b"
                     r"|\blived in \w+ places\b", flags=re.I)
"""Phrases that tell how the code came to be rather than what it is (git keeps the history)."""


def test_docs_docstrings_and_comments_tell_no_history():
    files = [*PAGES, ROOT / "params.yaml", ROOT / "dvc.yaml", *sorted((ROOT / "sert").rglob("*.py")),
             *sorted((ROOT / "stages").glob("*.py"))]
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in files
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if HISTORY.search(line)]
    assert not found, "\n".join(found)
    assert HISTORY.search("as issue 12 changed it") and HISTORY.search("the old rule")
