#!/usr/bin/env python3
"""Write a tiny random-weight llama-architecture GGUF that llama.cpp's server loads.

Usage: make_tiny_gguf.py OUT.gguf [SEED]

Like crates/gguf/tests/make_tiny_gguf.py (which llmchain-gguf's own tests use),
but with the pre-tokenizer `default`: llama.cpp refuses `gpt2` as
`tokenizer.ggml.pre` ("unknown pre-tokenizer type"), and the kernel tests
serve this file through llama.cpp's server (PyPI `xllamacpp`) as well as
load it in process. Byte-level BPE vocabulary (256 byte tokens, a few merges,
ChatML control tokens), ChatML chat template, random weights: unconstrained
output is nonsense, which is what the constrained-decoding and fallback tests
need. Needs PyPI `gguf` and `numpy`.
"""
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("python package `gguf` is missing: pip install gguf numpy")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def main():
    out = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    rng = np.random.default_rng(seed)
    b2u = bytes_to_unicode()
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [gguf.TokenType.CONTROL] * 3
    tokens += [b2u[b] for b in range(256)]
    types += [gguf.TokenType.NORMAL] * 256
    merges = ["1 2", "[ 1", "] ,", ", 3", "Ġ t", "t h", "i n"]
    for m in merges:
        tokens.append(m.replace(" ", ""))
        types.append(gguf.TokenType.NORMAL)
    n_vocab = len(tokens)
    n_embd, n_head, n_kv, n_ff, n_layer = 64, 4, 2, 128, 2
    head_dim = n_embd // n_head

    w = gguf.GGUFWriter(out, "llama")
    w.add_name("llmchain-kernel-tiny-random")
    w.add_context_length(8192)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )

    def t(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    w.add_tensor("token_embd.weight", t(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", t(n_vocab, n_embd))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", t(n_embd, n_embd))
        w.add_tensor(p + "attn_k.weight", t(n_kv * head_dim, n_embd))
        w.add_tensor(p + "attn_v.weight", t(n_kv * head_dim, n_embd))
        w.add_tensor(p + "attn_output.weight", t(n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", t(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", t(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", t(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
