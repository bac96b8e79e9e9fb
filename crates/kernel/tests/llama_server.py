#!/usr/bin/env python3
"""Start llama.cpp's HTTP server in-process via PyPI `xllamacpp` for the kernel tests.

Usage: llama_server.py MODEL.gguf PORT [N_CTX]

Prints `READY <address>` on stdout once the server listens, then serves until
stdin closes or the process is killed (the Rust test kills it on drop).
"""
import sys

import xllamacpp as xlc


def main():
    model, port = sys.argv[1], int(sys.argv[2])
    n_ctx = int(sys.argv[3]) if len(sys.argv) > 3 else 8192
    p = xlc.CommonParams()
    p.model.path = model
    p.port = port
    p.hostnames = ["127.0.0.1"]
    p.n_ctx = n_ctx
    p.n_parallel = 1
    p.endpoint_props = True
    p.warmup = False
    p.cpuparams.n_threads = 2
    p.cpuparams_batch.n_threads = 2
    server = xlc.Server(p)
    print("READY", server.listening_address, flush=True)
    # Serve until our stdin closes (the parent exited) or we are killed.
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    del server


if __name__ == "__main__":
    main()
