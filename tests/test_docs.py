"""The params reference (docs/params.md) is what the config classes declare."""

import importlib.util
import re

import yaml
from conftest import ROOT

DOCS = ROOT / "docs"


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
