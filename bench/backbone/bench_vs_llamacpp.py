#!/usr/bin/env python3
"""Backbone benchmark: t2 against llama.cpp (llama-cpp-python) on the same GGUF,
the same token ids and the same thread count, in one run. Prints both figures and
the ratio t2 / llama.cpp for prefill (512-token prompt), single-sequence decode,
and 16 concurrent prompts of 64 new tokens (t2 batched; llama.cpp batched too,
through its low-level batch API with one sequence id per prompt), plus peak RSS.

  /opt/t2ref/bin/pip install llama-cpp-python numpy
  /opt/t2ref/bin/python bench/backbone/bench_vs_llamacpp.py \
      --model models/SmolLM2-135M-Instruct.Q4_1.gguf --t2-bench build/bench/backbone/backbone_bench
"""
import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def chat(text):
    return ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
            "Hugging Face<|im_end|>\n<|im_start|>user\n" + text +
            "<|im_end|>\n<|im_start|>assistant\n")


def make_spec(model_path, n_batch):
    import llama_cpp
    vocab = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
    tok = lambda s: vocab.tokenize(s.encode(), add_bos=False, special=True)
    questions = [json.loads(l)["question"] for l in open(os.path.join(DATA, "gsm8k", "train.jsonl"))]
    long_text = " ".join(questions[100:200])
    return {
        "prefill": tok(long_text)[:512],
        "decode_prompt": tok(chat("Tell me a long story about a dragon who learns to fly.")),
        "decode_tokens": 128,
        "batch_prompts": [tok(chat(q)) for q in questions[:n_batch]],
        "batch_new_tokens": 64,
    }


def llamacpp_run(model_path, spec, threads, repeats):
    import llama_cpp as L
    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    model = L.llama_model_load_from_file(model_path.encode(), mparams)
    vocab_n = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))

    def context(n_ctx, n_seq):
        p = L.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch = n_ctx, 2048, 512
        p.n_threads, p.n_threads_batch, p.n_seq_max = threads, threads, n_seq
        if hasattr(p, "kv_unified"):
            p.kv_unified = True
        return L.llama_init_from_model(model, p)

    def decode(ctx, batch, items):
        """items: (token, pos, seq, want_logits)."""
        batch.n_tokens = len(items)
        for i, (t, pos, s, want) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, pos, 1
            batch.seq_id[i][0], batch.logits[i] = s, want
        if L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def argmax(ctx, i):
        ptr = L.llama_get_logits_ith(ctx, i)
        return int(np.ctypeslib.as_array(ptr, shape=(vocab_n,)).argmax())

    batch = L.llama_batch_init(4096, 0, 1)
    out = {"engine": "llama.cpp", "threads": threads}

    best = 1e30
    for _ in range(repeats):
        ctx = context(1024, 1)
        ids = spec["prefill"]
        t0 = time.perf_counter()
        decode(ctx, batch, [(t, p, 0, p == len(ids) - 1) for p, t in enumerate(ids)])
        best = min(best, time.perf_counter() - t0)
        L.llama_free(ctx)
    out["prefill_tok_s"] = len(spec["prefill"]) / best

    best = 1e30
    for _ in range(repeats):
        ctx = context(1024, 1)
        ids = spec["decode_prompt"]
        decode(ctx, batch, [(t, p, 0, p == len(ids) - 1) for p, t in enumerate(ids)])
        tok, pos = argmax(ctx, -1), len(ids)
        t0 = time.perf_counter()
        for _ in range(spec["decode_tokens"] - 1):
            decode(ctx, batch, [(tok, pos, 0, True)])
            tok, pos = argmax(ctx, -1), pos + 1
        best = min(best, (time.perf_counter() - t0) / (spec["decode_tokens"] - 1))
        L.llama_free(ctx)
    out["decode_tok_s"] = 1.0 / best

    prompts, new = spec["batch_prompts"], spec["batch_new_tokens"]
    n_ctx = 256 * ((sum(len(p) for p in prompts) + len(prompts) * new) // 256 + 1)
    best = 1e30
    for _ in range(repeats):
        ctx = context(n_ctx, len(prompts))
        t0 = time.perf_counter()
        items = [(t, p, s, p == len(ids) - 1) for s, ids in enumerate(prompts)
                 for p, t in enumerate(ids)]
        decode(ctx, batch, items)
        rows = [i for i, it in enumerate(items) if it[3]]
        toks = [argmax(ctx, r) for r in rows]
        pos = [len(p) for p in prompts]
        for _ in range(new - 1):
            decode(ctx, batch, [(toks[s], pos[s], s, True) for s in range(len(prompts))])
            toks = [argmax(ctx, s) for s in range(len(prompts))]
            pos = [p + 1 for p in pos]
        best = min(best, time.perf_counter() - t0)
        L.llama_free(ctx)
    out["batch_seconds"] = best
    out["batch_tok_s"] = len(prompts) * new / best
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--t2-bench", default="build/bench/backbone/backbone_bench")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--llamacpp-only", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.llamacpp_only:  # child process, so its peak RSS is its own
        spec = json.load(open(args.llamacpp_only))
        print(json.dumps(llamacpp_run(args.model, spec, args.threads, args.repeats)))
        return

    spec = make_spec(args.model, 16)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    ours = json.loads(subprocess.check_output(
        [args.t2_bench, args.model, f.name, str(args.repeats)], env=env).decode().splitlines()[-1])
    theirs = json.loads(subprocess.check_output(
        [sys.executable, __file__, "--model", args.model, "--threads", str(args.threads),
         "--repeats", str(args.repeats), "--llamacpp-only", f.name]).decode().splitlines()[-1])
    os.unlink(f.name)

    print(f"backbone benchmark: {args.model}, {args.threads} threads, best of {args.repeats}")
    print(f"{'figure':34} {'t2':>10} {'llama.cpp':>10} {'t2/llama':>9}")
    rows = [("prefill tok/s (512-token prompt)", "prefill_tok_s", True),
            ("decode tok/s (1 sequence)", "decode_tok_s", True),
            ("16 prompts x 64 new: seconds", "batch_seconds", False),
            ("16 prompts x 64 new: tok/s", "batch_tok_s", True),
            ("peak RSS MB", "peak_rss_mb", False)]
    for name, key, higher in rows:
        ratio = ours[key] / theirs[key]
        print(f"{name:34} {ours[key]:10.1f} {theirs[key]:10.1f} {ratio:8.2f}x"
              f"{'' if higher else ' (lower is better)'}")


if __name__ == "__main__":
    main()
