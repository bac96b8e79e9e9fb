#!/usr/bin/env python3
"""Writes a tiny random-weight llama-architecture GGUF for tests of llmchain-gguf.

Usage: make_tiny_gguf.py OUT.gguf [--seed N] [--dtype f32|f16|q8_0] [--tokenizer-from REAL.gguf]

Without --tokenizer-from, the vocabulary is byte-level BPE: three ChatML control tokens, the 256
byte chars, and a few multi-character tokens ("12", "[1", "],", ",3", "[]", ...) so constrained
decoding sees pieces that span several grammar steps. With --tokenizer-from, the tokenizer and
chat-template metadata of a real GGUF (e.g. SmolLM2) are copied. Needs PyPI `gguf` and `numpy`.
"""
import argparse
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("python package `gguf` is missing: pip install gguf numpy")

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
          "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def small_tokenizer(w):
    chars = byte_chars()
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + chars
    types = [gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.NORMAL] * 256
    merges = ["1 2", "3 4", "[ 1", "] ,", ", 3", "[ ]", "] ]", "0 ,", "1 0", "Ġ 1", "h e", "l l", "he ll"]
    for m in merges:
        tokens.append(m.replace(" ", ""))
        types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)
    return len(tokens)


def copied_tokenizer(w, path):
    r = gguf.GGUFReader(path)
    f = r.fields
    w.add_tokenizer_model(f["tokenizer.ggml.model"].contents())
    w.add_tokenizer_pre(f["tokenizer.ggml.pre"].contents())
    tokens = f["tokenizer.ggml.tokens"].contents()
    w.add_token_list(tokens)
    w.add_token_types(f["tokenizer.ggml.token_type"].contents())
    w.add_token_merges(f["tokenizer.ggml.merges"].contents())
    w.add_bos_token_id(f["tokenizer.ggml.bos_token_id"].contents())
    w.add_eos_token_id(f["tokenizer.ggml.eos_token_id"].contents())
    w.add_add_bos_token(bool(f["tokenizer.ggml.add_bos_token"].contents()))
    w.add_chat_template(f["tokenizer.chat_template"].contents())
    return len(tokens)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["f32", "f16", "q8_0"], default="f32")
    ap.add_argument("--tokenizer-from")
    a = ap.parse_args()

    n_embd, n_head, n_head_kv, n_layer, n_ff, ctx = 64, 4, 2, 2, 128, 2048
    head_dim = n_embd // n_head
    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name("llmchain tiny random llama")
    w.add_context_length(ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    n_vocab = copied_tokenizer(w, a.tokenizer_from) if a.tokenizer_from else small_tokenizer(w)
    w.add_vocab_size(n_vocab)

    rng = np.random.default_rng(a.seed)

    def mat(rows, cols, scale):
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    def add(name, arr):
        if arr.ndim == 1 or a.dtype == "f32":
            w.add_tensor(name, arr.astype(np.float32))
        elif a.dtype == "f16":
            w.add_tensor(name, arr.astype(np.float16))
        else:
            q = gguf.quants.quantize(arr, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    add("token_embd.weight", mat(n_vocab, n_embd, 1.0))
    add("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    add("output.weight", mat(n_vocab, n_embd, 0.5))
    kv = head_dim * n_head_kv
    for i in range(n_layer):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add(p + "attn_q.weight", mat(n_embd, n_embd, 0.2))
        add(p + "attn_k.weight", mat(kv, n_embd, 0.2))
        add(p + "attn_v.weight", mat(kv, n_embd, 0.2))
        add(p + "attn_output.weight", mat(n_embd, n_embd, 0.2))
        add(p + "ffn_gate.weight", mat(n_ff, n_embd, 0.2))
        add(p + "ffn_up.weight", mat(n_ff, n_embd, 0.2))
        add(p + "ffn_down.weight", mat(n_embd, n_ff, 0.2))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
