import json
from pathlib import Path

import pytest
import yaml

from sert.errors import DataError, ParamsError
from sert.io import atomic_path, read_jsonl, write_jsonl
from sert.config import SECTIONS
from stages.common import load_params
from stages.train import VARIANT_INPUTS
from stages.train_sert import DATA, INIT

ROOT = Path(__file__).resolve().parents[1]


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "1"}\n{"id": \n')
    with pytest.raises(DataError, match=r"x.jsonl:2: malformed JSON"):
        read_jsonl(path)
    path.write_text('{"id": "1"}\n')
    with pytest.raises(DataError, match=r"x.jsonl:1: missing field 'question'"):
        read_jsonl(path, required=("id", "question"))
    path.write_bytes(b'{"id": "1"}\n{"id": "\xff"}\n')
    with pytest.raises(DataError, match=r"x.jsonl:2: not valid UTF-8"):  # the line, not a byte offset
        read_jsonl(path)
    path.write_text('{"id": "1"}\n\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x.jsonl:3: expected a JSON object"):
        read_jsonl(path)
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"

    def records():
        yield {"a": 1}
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_jsonl(target, records())
    assert list(tmp_path.iterdir()) == []
    write_jsonl(target, [{"a": 1}])
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}


def test_committed_params_validate():
    params = load_params(ROOT / "params.yaml")
    assert params.task.name == "modsum" and params.student.model == "tiny" and params.teacher.backend == "oracle"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(raw) == set(SECTIONS)


@pytest.mark.parametrize("text, message", [
    ("task:\n  nmae: modsum\n", r"task.nmae: unknown key"),
    ("sampel:\n  top_k: 3\n", r"sampel: unknown section"),
    ("train:\n  epochs: ten\n", r"train.epochs: expected int"),
    ("sample:\n  top_p: 1.5\n", r"sample.top_p: must be in \(0, 1\]"),
    ("train:\n  epochs: -1\n", r"train.epochs: must be at least 1"),
    ("train:\n  lr: true\n", r"train.lr: expected float"),
])
def test_bad_params_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=message) as err:
        load_params(path)
    assert "\n" not in str(err.value)


def test_dvc_train_foreach_mirrors_the_variant_table():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    foreach = dvc["stages"]["train"]["foreach"]
    table = {k: (v["init"], v["data"]) for k, v in foreach.items()}
    assert table == VARIANT_INPUTS
    sert = dvc["stages"]["train_sert"]  # sert has its own stage (iterated SERT reads more)
    assert sert["cmd"] == "sert train-sert"
    assert tuple(sert["deps"][:2]) == (INIT, DATA)
