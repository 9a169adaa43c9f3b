"""GPU checks (skipped without CUDA; the vLLM part also without vLLM): both sampling backends on
the same prompts with a random-weight GPT-2-small and the real GPT-2 tokenizer (offline). And, on
any machine, the GPU run's preset and scripts (benchmarks/gpu_protocol.*, benchmarks/gpu_prep.sh):
the preset is the paper's whole protocol, the scripts parse, the student's wheel survives the split
into parts and the join, and the stage runner schedules, fails and resumes as dvc.yaml says. The
whole tiny CPU path of the GPU script (~5 min on a 2-core box) runs with SERT_TINY_PROTOCOL=1.

    PYTHONPATH=$PWD python -m pytest -q -s tests/test_gpu.py
"""

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

from sert.config import SampleConfig
from sert.samplers import sample_latent_paths
from sert.text import split_answer_clause  # noqa: E402

PROMPTS = [(f"q{i}", f"Question: {text}\nAnswer:") for i, text in enumerate([
    "Where would you put a plate after washing it?",
    "What do people use to cut paper?",
    "If a river freezes in winter, what can people do on it?",
    "Which is heavier, a kilogram of iron or a kilogram of feathers?",
])]
CFG = SampleConfig(branches=5, samples_per_branch=5, max_new_tokens=32, batch_size=4, seed=0)
FIELDS = {"id": str, "branch": int, "branch_token": str, "text": str, "n_tokens": int, "perplexity": float,
          "rep2": float, "eos_branch": bool, "kept_perplexity": float}


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    from sert.modeling import offline_gpt2_tokenizer, save_student

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gpt2-random")
    tokenizer = offline_gpt2_tokenizer()
    model = GPT2LMHeadModel(GPT2Config(bos_token_id=50256, eos_token_id=50256, pad_token_id=50256))
    save_student(model, tokenizer, path)
    return path


def check_samples(samples, cfg=CFG):
    per_question = cfg.branches * cfg.samples_per_branch
    assert len(samples) == len(PROMPTS) * per_question
    assert [s.id for s in samples] == [q for q, _ in PROMPTS for _ in range(per_question)]
    for s in samples:
        record = s.to_json()
        no_clause = split_answer_clause(s.text)[1] is None
        nulls = {"perplexity": type(None)} if not s.n_tokens else {}
        if s.kept_perplexity is None:  # nothing before the answer clause, or an empty sample
            assert not split_answer_clause(s.text)[0].strip()
            nulls["kept_perplexity"] = type(None)
        assert {k: type(v) for k, v in record.items()} == FIELDS | nulls
        assert not no_clause or s.kept_perplexity == s.perplexity
        assert 0 <= s.n_tokens <= cfg.max_new_tokens and 0 <= s.rep2 <= 1
        assert s.n_tokens == 0 or 1 <= s.perplexity < 1e6
    if cfg.branching == "topk":
        assert {s.branch for s in samples} == set(range(cfg.branches))
    return statistics.mean(math.log(s.perplexity) for s in samples if s.n_tokens)


def hf_samples(gpt2_dir, dtype, cfg=CFG):
    from sert.modeling import load_student

    model, tokenizer = load_student(str(gpt2_dir))
    model = model.to("cuda", dtype=dtype)
    return list(sample_latent_paths(model, tokenizer, PROMPTS, cfg))


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_hf_backend_on_cuda(gpt2_dir, dtype):
    samples = hf_samples(gpt2_dir, dtype)
    log_ppl = check_samples(samples)
    # a random GPT-2 is close to uniform over its 50,257 tokens: log-perplexity well above a trained one's ~3 (below log(50257) = 10.8)
    assert 5 < log_ppl < 11.5, log_ppl
    again = hf_samples(gpt2_dir, dtype)
    assert [s.text for s in again] == [s.text for s in samples]  # seeded per question
    raw = hf_samples(gpt2_dir, dtype, SampleConfig(**{**CFG.__dict__, "branching": "raw"}))
    check_samples(raw, SampleConfig(**{**CFG.__dict__, "branching": "raw"}))


@needs_cuda
def test_hf_cuda_matches_hf_cpu_mostly(gpt2_dir):
    from sert.modeling import load_student

    model, tokenizer = load_student(str(gpt2_dir))
    cpu = list(sample_latent_paths(model, tokenizer, PROMPTS, CFG))
    cuda = hf_samples(gpt2_dir, torch.float32)
    same_branch = statistics.mean(a.branch_token == b.branch_token for a, b in zip(cpu, cuda))
    same_text = statistics.mean(a.text == b.text for a, b in zip(cpu, cuda))
    print(f"cpu vs cuda fp32: same branch token {same_branch:.2f}, same text {same_text:.2f}")
    # near-uniform random logits make rare flips possible; per-question seeding makes most rows equal
    assert same_branch >= 0.8 and same_text >= 0.5


@needs_cuda
def test_vllm_and_hf_backends_agree_on_schema_and_statistics(gpt2_dir):
    pytest.importorskip("vllm")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from sert.samplers.vllm_engine import VllmSampler

    hf = hf_samples(gpt2_dir, torch.float32)
    torch.cuda.empty_cache()
    sampler = VllmSampler(str(gpt2_dir), CFG, dtype="float32", gpu_memory_utilization=0.4, enforce_eager=True)
    budget = sampler.plan([p for _, p in PROMPTS])
    vllm = sampler.sample([q for q, _ in PROMPTS], budget.prompt_ids, budget.max_new)
    hf_log_ppl, vllm_log_ppl = check_samples(hf), check_samples(vllm)
    assert [s.to_json().keys() for s in hf] == [s.to_json().keys() for s in vllm]
    assert [(s.id, s.branch) for s in hf] == [(s.id, s.branch) for s in vllm]
    same_branch = statistics.mean(a.branch_token == b.branch_token for a, b in zip(hf, vllm))
    print(f"hf vs vllm: log-perplexity {hf_log_ppl:.3f} vs {vllm_log_ppl:.3f}; same branch token {same_branch:.2f}; "
          f"mean tokens {statistics.mean(s.n_tokens for s in hf):.1f} vs {statistics.mean(s.n_tokens for s in vllm):.1f}")
    assert abs(hf_log_ppl - vllm_log_ppl) < 0.05 * hf_log_ppl  # the same model's own log-probabilities
    assert same_branch >= 0.8  # the first-step top-5 is deterministic; only near-ties may flip
    again = sampler.sample([q for q, _ in PROMPTS], budget.prompt_ids, budget.max_new)
    assert [s.text for s in again] == [s.text for s in vllm]  # per-request seeds


@needs_cuda
def test_bf16_training_on_cuda_learns_and_tracks_fp32():
    """The training loop under bf16 autocast on CUDA: the loss falls on a repeated batch, and the
    first step's loss matches an fp32 run's within bf16 precision."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from sert.config import TrainConfig
    from sert.runtime import resolve_precision
    from sert.training import prompt_target, train_causal_lm

    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    gen = torch.Generator().manual_seed(0)
    examples = [prompt_target(torch.randint(256, 50000, (20,), generator=gen).tolist(),
                              torch.randint(256, 50000, (60,), generator=gen).tolist()) for _ in range(8)]
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(n_layer=4, bos_token_id=50256, eos_token_id=50256))
        cfg = TrainConfig(epochs=20, batch_size=8, lr=1e-3, precision=precision, device="cuda", checkpoint_every=0)
        losses[precision] = train_causal_lm(model, examples, cfg, 50256)
        assert next(model.parameters()).device.type == "cuda"
    print(f"loss fp32 {losses['fp32'][0]:.4f} -> {losses['fp32'][-1]:.4f}; bf16 {losses['bf16'][0]:.4f} -> {losses['bf16'][-1]:.4f}")
    assert abs(losses["bf16"][0] - losses["fp32"][0]) < 0.05 * losses["fp32"][0]
    assert losses["bf16"][-1] < 0.5 * losses["bf16"][0]    # memorizes one repeated batch


# -- the GPU run's preset and scripts, on any machine ---------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
import gpu_protocol  # noqa: E402


def test_gpu_preset_is_the_whole_published_protocol_on_cuda():
    from stages.common import load_params
    from stages.presets import PRESETS

    p = load_params(ROOT / "presets" / "strategyqa-smollm2-gpu.yaml")
    assert (p.task.subset_train, p.task.subset_test, p.task.split_file) == (
        None, None, "../shared/data/finetune-cot/strategy_qa__default.json")
    assert (p.sample.branches * p.sample.samples_per_branch, p.sample.max_new_tokens) == (25, 128)
    assert (p.train.epochs, p.train.batch_size, p.train.lr, p.train.max_length) == (20, 8, 3e-4, 512)
    assert p.evaluate.max_new_tokens == 512 and p.evaluate.batch_size >= 687
    assert (p.sample.device, p.train.device, p.evaluate.device) == ("cuda", "cuda", "cuda")
    assert (p.sample.precision, p.train.precision, p.evaluate.precision) == ("auto",) * 3   # bf16 on a bf16 GPU
    assert p.teacher.backend == "import" and p.teacher.source == "../shared/data/finetune-cot/D_strategy_qa.json"
    departures = PRESETS["strategyqa-smollm2-gpu"].departures
    assert set(departures) == {"sample.device", "sample.batch_size", "train.device", "evaluate.device",
                               "evaluate.batch_size"}   # where it runs and how many rows share a step, nothing else


def test_evaluate_device_cuda_without_cuda_stops_with_the_key(tiny_student):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    from sert.config import EvalConfig
    from sert.errors import ParamsError
    from sert.model_eval import evaluate_model
    from sert.tasks import TaskConfig, get_task

    model, tokenizer = tiny_student
    with pytest.raises(ParamsError, match="evaluate.device"):
        evaluate_model(model, tokenizer, get_task(TaskConfig()), [], "{question}", EvalConfig(device="cuda"))


def test_gpu_scripts_parse():
    for script in ("gpu_protocol.sh", "gpu_prep.sh"):
        subprocess.run(["bash", "-n", str(BENCH / script)], check=True)
    compile((BENCH / "gpu_protocol.py").read_text(encoding="utf-8"), "gpu_protocol.py", "exec")


def test_split_and_join_round_trip(tmp_path):
    """The student's wheel travels in parts (gpu_prep.sh split) and is joined and checked there
    (gpu_protocol.sh assemble): parts missing wait (exit 3), all parts give the same bytes, a damaged
    part is refused."""
    blob = tmp_path / "student.whl"
    blob.write_bytes(os.urandom(2_500_001))
    dirs = [tmp_path / f"call{k}" for k in (1, 2, 3)]
    subprocess.run(["bash", str(BENCH / "gpu_prep.sh"), "split", str(blob), "1000000", *map(str, dirs)], check=True)
    assert [sorted(p.name for p in d.iterdir()) for d in dirs] == [
        [f"student.whl.part{k}", "student.whl.sha256"] for k in (1, 2, 3)]
    too_few = subprocess.run(["bash", str(BENCH / "gpu_prep.sh"), "split", str(blob), "1000000", str(tmp_path / "x")],
                             capture_output=True, text=True)
    assert too_few.returncode != 0 and "needs 3 parts" in too_few.stderr

    inbox, joined = tmp_path / "inbox", tmp_path / "joined"
    inbox.mkdir()

    def join():
        return subprocess.run(["bash", str(BENCH / "gpu_protocol.sh"), "assemble", str(inbox), str(joined)],
                              capture_output=True, text=True)

    for d in dirs[:2]:
        for f in d.iterdir():
            (inbox / f.name).write_bytes(f.read_bytes())
    waiting = join()
    assert waiting.returncode == 3 and "waiting for student.whl.part3" in waiting.stdout
    (inbox / "student.whl.part3").write_bytes((dirs[2] / "student.whl.part3").read_bytes())
    assert join().returncode == 0 and (joined / "student.whl").read_bytes() == blob.read_bytes()
    (joined / "student.whl").unlink()
    with open(inbox / "student.whl.part2", "ab") as f:
        f.write(b"x")
    damaged = join()
    assert damaged.returncode == 1 and not (joined / "student.whl").exists()


def test_runner_takes_the_stages_and_their_order_from_dvc_yaml():
    stages = gpu_protocol.load_stages(ROOT / "dvc.yaml")
    assert "base" in stages["sample"]["after"] and "sample" in stages["filter"]["after"]
    assert {"teacher", "train_sert"} <= set(stages["train@sert_rd"]["after"])
    assert {"base", "teacher"} <= set(stages["train@rd"]["after"]) and "train_sert" not in stages["train@rd"]["after"]
    assert {f"evaluate@{v}" for v in ("base", "finetune", "sert", "rd", "sert_rd")} | {"judge"} <= set(stages["report"]["after"])
    assert stages["train@finetune"]["cmd"] == "sert train finetune"
    assert gpu_protocol.argv_of("sert train finetune") == [sys.executable, "-m", "stages.cli", "train", "finetune"]


FAKE = """stages:
  a:
    cmd: sh -c 'echo a > a.txt'
    outs: [a.txt]
  work:
    foreach: [b, c]
    do:
      cmd: sh -c 'sleep 1; test ! -f ../../fail-${item} && cat a.txt > ${item}.txt'
      deps: [a.txt]
      outs: ["${item}.txt"]
  d:
    cmd: sh -c 'cat b.txt c.txt > d.txt'
    deps: [b.txt, c.txt]
    metrics: [d.txt]
"""


def test_runner_runs_side_by_side_skips_after_a_failure_and_resumes(tmp_path):
    (tmp_path / "dvc.yaml").write_text(FAKE)
    (tmp_path / "fail-c").touch()
    data = tmp_path / "data"
    data.mkdir()
    work = tmp_path / "run"
    args = ["run", "--work", str(work), "--data", str(data), "--dvc-yaml", str(tmp_path / "dvc.yaml"), "--tiny"]
    assert gpu_protocol.main(args) == 1
    state = gpu_protocol.read_state(work)
    assert {n: s["status"] for n, s in state["stages"].items()} == {
        "a": "done", "work@b": "done", "work@c": "failed", "d": "skipped"}
    b, c = state["stages"]["work@b"], state["stages"]["work@c"]
    assert b["start"] < c["end"] and c["start"] < b["end"], "b and c depend on a only: they run side by side"
    assert (work / "shared" / "data").resolve() == data and (work / "sert" / "params.yaml").is_file()

    (tmp_path / "fail-c").unlink()
    assert gpu_protocol.main(args) == 0
    again = gpu_protocol.read_state(work)
    assert again["runs"] == 2 and all(s["status"] == "done" for s in again["stages"].values())
    assert again["stages"]["a"] == state["stages"]["a"] and again["stages"]["work@b"] == b   # kept, not rerun
    assert (work / "sert" / "d.txt").read_text() == "a\na\n"

    out = tmp_path / "out"
    assert gpu_protocol.main(["collect", "--work", str(work), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert {"summary.md", "timings.json", "results.tar.gz"} <= set(names) and len(names) <= gpu_protocol.MAX_OUT_FILES
    timings = json.loads((out / "timings.json").read_text())
    assert timings["finished"] and timings["critical_path"][0] == "a" and timings["critical_path"][-1] == "d"


def test_start_runs_in_its_own_session_and_wait_follows_it(tmp_path):
    (tmp_path / "dvc.yaml").write_text(FAKE)
    (tmp_path / "data").mkdir()
    work = tmp_path / "run"
    started = subprocess.run([sys.executable, str(BENCH / "gpu_protocol.py"), "start", "--work", str(work),
                              "--data", str(tmp_path / "data"), "--dvc-yaml", str(tmp_path / "dvc.yaml"), "--tiny"],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    pid = gpu_protocol.read_state(work)["runner_pid"]
    assert os.getsid(pid) == pid   # a session of its own: it outlives the command that started it
    waited = subprocess.run([sys.executable, str(BENCH / "gpu_protocol.py"), "wait", "--work", str(work),
                             "--until", str(time.time() + 60), "--every", "1"], capture_output=True, text=True,
                            timeout=90)
    assert waited.returncode == 0 and "every stage done" in waited.stdout, waited.stdout


@pytest.mark.skipif(os.environ.get("SERT_TINY_PROTOCOL") != "1",
                    reason="the tiny CPU path of the GPU script takes ~5 min: SERT_TINY_PROTOCOL=1 runs it")
def test_tiny_protocol_on_cpu_end_to_end(tmp_path):
    """gpu_protocol.sh as the device calls run it, on this CPU with the tiny slice: the student's wheel
    arrives in two parts over two calls (the real one, from gpu_prep.sh's .gpu/), the pipeline runs
    every stage and the report comes back."""
    import shutil

    parts = ROOT / ".gpu"
    if not (parts / "call1" / "model").is_dir() or not (parts / "call2" / "model").is_dir():
        pytest.skip("run benchmarks/gpu_prep.sh first (it builds .gpu/)")
    env = {**os.environ, "SERT_GPU_TINY": "1", "SERT_GPU_JOBS": "2", "SERT_GPU_STATE": str(tmp_path / "state"),
           "SERT_GPU_EVERY": "60", "OUT": str(tmp_path / "out")}
    for call in ("call1", "call2"):
        shutil.copytree(parts / call / "model", tmp_path / f"carry-{call}" / call / "model")
    first = subprocess.run(["bash", str(BENCH / "gpu_protocol.sh"), "60"], cwd=ROOT, capture_output=True, text=True,
                           env={**env, "SERT_GPU_CARRY": str(tmp_path / "carry-call1")}, timeout=300)
    assert first.returncode == 3 and "waiting for" in first.stdout, first.stdout[-3000:]
    second = subprocess.run(["bash", str(BENCH / "gpu_protocol.sh"), "1200"], cwd=ROOT, capture_output=True,
                            text=True, env={**env, "SERT_GPU_CARRY": str(tmp_path / "carry-call2")}, timeout=1300)
    assert second.returncode == 0, second.stdout[-5000:]
    timings = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert timings["finished"] and all(s["status"] == "done" for s in timings["stages"].values())
    assert set(timings["eval"]) == {"base", "finetune", "sert", "rd", "sert_rd", "teacher"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# SERT results") and "| SERT+RD |" in report
