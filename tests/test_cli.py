"""The ``sert`` command: every stage is listed and runnable, and ``--help`` does not import torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stages.cli import GROUPS, STAGES, app, module_name, stage_summary

ROOT = Path(__file__).resolve().parents[1]


def test_every_stage_module_is_a_subcommand():
    modules = set()
    for path in (ROOT / "stages").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body) and path.stem != "cli":
            modules.add(path.stem)
    assert modules == {module_name(name) for name in STAGES}


def test_top_level_help_lists_stages_without_importing_torch():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom stages.cli import app\n"
            "result = CliRunner().invoke(app, ['--help'], terminal_width=200)\n"
            "print(result.exit_code, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
            "print(result.output)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    status, listing = out.split("\n", 1)
    assert status == "0 False False"
    for name in (*STAGES, *GROUPS, "tasks"):
        assert f" {name} " in listing
    first_words = " ".join(stage_summary("train").split()[:6])
    assert first_words in " ".join(listing.split())


@pytest.mark.parametrize("name", STAGES)
def test_stage_help_comes_from_the_stage_itself(name):
    result = CliRunner().invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--params" in result.output or name == "presets"
    assert " ".join(stage_summary(name).split()[:5]) in " ".join(result.output.split())


def test_a_misspelt_stage_is_a_usage_error_with_a_suggestion():
    result = CliRunner().invoke(app, ["trian"])
    assert result.exit_code == 2
    assert "train" in result.output
