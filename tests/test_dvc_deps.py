"""dvc.yaml's code and params deps, derived from the code: a stage reruns exactly when what it runs changes.

For every stage in dvc.yaml (foreach entries expanded) the command ``sert <name> ...`` runs
``stages/<name>.py``. Its code deps are that module and every ``sert``/``stages`` module it imports,
transitively (imports inside functions count: they run too); a package whose ``__init__`` imports
its members (``sert/tasks``) is declared as its directory. Its params deps are the ``p.<section>``
and ``p.<section>.<key>`` reads of the stage modules it imports, where ``p`` is the validated
``Params`` (a convention the test checks: ``load_params`` results are always bound to ``p``), and
every model a stage loads honours ``student.trust_remote_code``.

A stage that declares less would not rerun when its code or params change; one that declares
more reruns for nothing (and hides which knobs matter). Both fail here, naming the stage.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sert", "stages")
DIRECTORY_DEPS = ("sert/samplers", "sert/tasks", "sert/teachers")
"""Packages declared as one directory dep: their ``__init__`` imports every member (a registry)."""


def module_file(name: str) -> Path | None:
    """``sert.x.y`` -> its source file under ROOT, or None when it is not ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def imports_of(path: Path) -> frozenset[Path]:
    """The files of our modules that ``path`` imports anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    found: set[Path] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package.split(".")[: -node.level]
                base = ".".join(parent + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from sert.tasks import modsum` imports a module; `from sert.io import read_jsonl` a name.
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            # Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c.
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:i]))
                if file is not None:
                    found.add(file)
    return frozenset(found)


def closure(start: Path) -> set[Path]:
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(imports_of(path))
    return seen


def as_dep(path: Path) -> str | None:
    """How dvc.yaml names ``path``: a directory dep for registry packages, else the file; the two
    top-level package ``__init__`` files (a docstring and ``__version__``) are not deps."""
    rel = path.relative_to(ROOT).as_posix()
    if rel in ("sert/__init__.py", "stages/__init__.py"):
        return None
    for directory in DIRECTORY_DEPS:
        if rel.startswith(directory + "/"):
            return directory
    return rel


def params_read(path: Path) -> set[str]:
    """``section`` or ``section.key`` for every ``p.section[.key]`` read in ``path`` (the whole
    section when ``p.section`` is used other than for an attribute)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    reads: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "p":
            parent = parents.get(node)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                reads.add(f"{node.attr}.{parent.attr}")
            else:
                reads.add(node.attr)
    return reads


def load_params_bound_to_p(path: Path) -> bool:
    """Every ``load_params(...)`` call in ``path`` is assigned to ``p`` (what params_read relies on)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if getattr(func, "id", getattr(func, "attr", None)) == "load_params":
                if [getattr(t, "id", None) for t in node.targets] != ["p"]:
                    return False
    return True


def dvc_stages() -> dict[str, dict]:
    """dvc.yaml's stages with ``foreach`` expanded (``${key}`` / ``${item}`` / ``${item.x}``)."""
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    stages = {}
    for name, spec in raw.items():
        if "foreach" not in spec:
            stages[name] = spec
            continue
        items = spec["foreach"]
        pairs = items.items() if isinstance(items, dict) else ((i, i) for i in items)
        for key, item in pairs:
            text = yaml.safe_dump(spec["do"]).replace("${key}", str(key))
            if isinstance(item, dict):
                for field, value in item.items():
                    text = text.replace(f"${{item.{field}}}", str(value))
            else:
                text = text.replace("${item}", str(item))
            stages[f"{name}@{key}"] = yaml.safe_load(text)
    return stages


def stage_module(cmd: str) -> Path:
    words = cmd.split()
    assert words[0] == "sert", cmd
    return ROOT / "stages" / f"{words[1].replace('-', '_')}.py"


STAGES = dvc_stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_are_what_the_stage_imports(name):
    spec = STAGES[name]
    module = stage_module(spec["cmd"])
    expected = {dep for dep in map(as_dep, closure(module)) if dep}
    declared = {d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps", [])}
    declared_code = {d for d in declared if d.split("/")[0] in PACKAGES}
    missing, extra = sorted(expected - declared_code), sorted(declared_code - expected)
    assert not missing and not extra, (
        f"dvc.yaml stage {name}: code deps disagree with {module.relative_to(ROOT)}'s imports; "
        f"add {missing}, remove {extra}")


@pytest.mark.parametrize("name", sorted(STAGES))
def test_params_deps_are_what_the_stage_reads(name):
    spec = STAGES[name]
    # stages/common.py validates every section at load (a typo anywhere fails every stage early);
    # what a stage computes depends only on what the stage's own modules read.
    modules = [f for f in closure(stage_module(spec["cmd"])) if f.parent.name == "stages" and f.name != "common.py"]
    for module in modules:
        assert load_params_bound_to_p(module), f"{module}: bind load_params(...) to `p` (this test reads p.<section>)"
    reads = set().union(*(params_read(m) for m in modules))
    declared = set(spec.get("params", []))
    whole = {r for r in reads if "." not in r}
    # A read is covered by its section declared whole or by the exact key.
    uncovered = sorted(r for r in reads if r not in declared and r.split(".")[0] not in declared)
    # A declared section must be read whole (else declare the keys); a declared key must be read.
    unread = sorted(d for d in declared if (d not in whole if "." not in d else d not in reads))
    assert not uncovered and not unread, (
        f"dvc.yaml stage {name}: params disagree with what its code reads; "
        f"declare {uncovered}, drop or narrow {unread} (reads: {sorted(reads)})")


def test_the_derivation_sees_real_imports_and_reads(tmp_path):
    """The helpers above find what they should (else the tests above could pass vacuously)."""
    evaluate = closure(ROOT / "stages" / "evaluate.py")
    assert ROOT / "sert" / "evaluation.py" in evaluate
    assert any(as_dep(f) == "sert/tasks" for f in evaluate)
    sample = tmp_path / "stage.py"
    sample.write_text("def main():\n    p = load_params(x)\n    f(p.train, p.prompts.zero_shot)\n", encoding="utf-8")
    assert params_read(sample) == {"train", "prompts.zero_shot"}
    sample.write_text("q = load_params(x)\n", encoding="utf-8")
    assert not load_params_bound_to_p(sample)


def test_every_stage_model_load_passes_trust_remote_code():
    """``student.trust_remote_code`` reaches every model a stage loads (one loader, one flag)."""
    for module in sorted((ROOT / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("load_student", "train_on_texts"):
                passed = [ast.unparse(a) for a in node.args] + [ast.unparse(k.value) for k in node.keywords]
                assert any("trust_remote_code" in a for a in passed), (
                    f"{module.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node.func)}() without p.student.trust_remote_code")
