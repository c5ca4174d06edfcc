#!/usr/bin/env python3
"""Reference logits and greedy continuations for t2's forward pass, computed by an
independent implementation: Hugging Face transformers in f32, loading the same
GGUF file (it dequantizes the weights itself with the `gguf` package).

Writes tests/reference/logits_reference.json (token ids, per-position argmax,
greedy 64-token continuations) and logits_reference.bin (the last position's
full logits per prompt, little-endian f32, in prompt order).

  python3 -m venv /opt/t2ref && /opt/t2ref/bin/pip install torch transformers gguf accelerate
  /opt/t2ref/bin/python tests/reference/make_logits_reference.py models/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    ("chat", "What is the capital of France?"),
    ("chat", "Write a Python function that returns the n-th Fibonacci number."),
    ("raw", "The quick brown fox"),
    ("raw", "1, 2, 3, 4, 5,"),
    ("chat", "Natalia sold clips to 48 of her friends in April, and then she sold half as "
             "many clips in May. How many clips did Natalia sell altogether in April and May?"),
    ("raw", "Once upon a time, in a small village at the edge of a great forest, there lived "
            "an old clockmaker who had never left his workshop. Every morning he wound the "
            "hundred clocks on his walls, and every evening he listened to them strike the "
            "hour together. One day a child knocked on his door and asked"),
    ("chat", "Translate to French: I would like a cup of tea, please."),
]


def main():
    path = sys.argv[1]
    out_dir = os.path.dirname(os.path.abspath(__file__))
    folder, name = os.path.split(os.path.abspath(path))
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()

    cases = []
    last_logits = []
    for mode, text in PROMPTS:
        if mode == "chat":
            ids = tok.apply_chat_template([{"role": "user", "content": text}],
                                          add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
        else:
            ids = tok(text, add_special_tokens=False)["input_ids"]
        ids = [int(i) for i in ids]
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0].float().numpy()
            # Plain greedy with the KV cache: argmax each step, never stopping.
            # (model.generate applies its own logits processors, e.g. around eos.)
            out = model(x, use_cache=True)
            past, continuation = out.past_key_values, []
            for _ in range(64):
                continuation.append(int(out.logits[0, -1].argmax()))
                out = model(torch.tensor([[continuation[-1]]]), past_key_values=past,
                            use_cache=True)
                past = out.past_key_values
        cases.append({"mode": mode, "text": text, "ids": ids,
                      "argmax": [int(a) for a in logits.argmax(-1)],
                      "greedy64": continuation})
        last_logits.append(logits[-1].astype("<f4"))
        print(f"{mode:4} {len(ids):4} tokens -> {tok.decode(continuation)[:60]!r}")

    with open(os.path.join(out_dir, "logits_reference.json"), "w") as f:
        json.dump({"model": name, "vocab": int(last_logits[0].shape[0]), "cases": cases}, f)
    np.concatenate(last_logits).tofile(os.path.join(out_dir, "logits_reference.bin"))


if __name__ == "__main__":
    main()
