#!/usr/bin/env bash
# Prepare, on THIS (CPU) machine, what experiments/gpu_validate.sh needs on a lent GPU machine.
#
#   bash experiments/gpu_prepare.sh
#
# 1. .whl/gguf-<version>-py3-none-any.whl: the GPU image has torch, transformers, accelerate,
#    scipy, ... but not gguf (pure Python), which transformers needs to read the GGUF model.
#    Carry it with carry=[".whl"]; gpu_validate.sh installs it into a temporary folder.
# 2. runs/gpu_model/SmolLM2-135M-Instruct.Q4_1.gguf.part0, .part1: the model file is 94 MiB,
#    more than the 64 MiB one call can carry. Send the parts in two calls on the same warm
#    machine, e.g. call 1 (carry part0):  mkdir -p /tmp/chansim_model && cp runs/gpu_model/*.part0 /tmp/chansim_model/
#    call 2 (carry .whl and part1):      bash experiments/gpu_validate.sh $OUT
#    gpu_validate.sh joins the parts it finds in /tmp/chansim_model and runs/gpu_model and checks
#    the SHA-256. (Or point CHANSIM_GGUF at the whole file if it is already there.)
# Both folders are git-ignored (/.whl/, /runs/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}

mkdir -p .whl
if ! ls .whl/gguf-*.whl >/dev/null 2>&1; then
    version=$($PY -c 'import importlib.metadata as m; print(m.version("gguf"))')
    $PY -m pip download -q --no-deps --only-binary=:all: -d .whl "gguf==$version"
fi
ls -l .whl/gguf-*.whl

gguf=$($PY -c 'from chansim.llm.models import default_gguf_path; print(default_gguf_path())')
name=$(basename "$gguf")
mkdir -p runs/gpu_model
rm -f runs/gpu_model/"$name".part*
split -b 48M -d -a 1 "$gguf" runs/gpu_model/"$name".part
(cd "$(dirname "$gguf")" && sha256sum "$name") > runs/gpu_model/"$name".sha256
ls -l runs/gpu_model
