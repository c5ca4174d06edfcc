#!/usr/bin/env python3
"""Reference dLoss/dz of SVF experts at z = 1 for t2's backward pass, computed
independently: Hugging Face transformers in f32 loads the same GGUF, autograd gives
the dense weight gradient G = dL/dW of each chosen matrix, and the SVD
W = U diag(s) V^T (torch.linalg.svd, f64) turns it into

    dL/dz_i = s_i u_i^T G v_i - (s_i / sum(s)) * sum_j s_j u_j^T G v_j

(the second term is the rescale sum(s)/sum(s z)). Flipping the sign of a pair
(u_i, v_i) leaves u_i^T G v_i unchanged, so the numbers do not depend on the SVD's
sign choices; only (near-)degenerate singular values could mix, and the test skips
those. The q/k rows that the GGUF converter permutes change nothing either:
permuted W and G give the same u^T G v.

Loss: sum over two chat sequences of the log-probabilities of their response tokens.

Writes tests/reference/svf_grad_reference.json (ids, prompt lengths, slots, response
log-probs, loss) and svf_grad_reference.bin: per slot in order, s then dL/dz
(little-endian f32, rank values each).

  /opt/t2ref/bin/python tests/reference/svf_grad_reference.py \
      models/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

CASES = [
    ("What is 7 times 8?", "7 times 8 is 56."),
    ("Name one primary color and say why it is primary.",
     "Red is a primary color: it cannot be made by mixing other colors."),
]
# (layer, GGUF kind): the MLP of the first and last layer, every kind of a middle one.
KINDS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
SLOTS = ([(0, k) for k in KINDS[4:]] + [(15, k) for k in KINDS] + [(29, k) for k in KINDS[4:]])


def hf_linear(model, layer, kind):
    blk = model.model.layers[layer]
    return {"attn_q": blk.self_attn.q_proj, "attn_k": blk.self_attn.k_proj,
            "attn_v": blk.self_attn.v_proj, "attn_output": blk.self_attn.o_proj,
            "ffn_gate": blk.mlp.gate_proj, "ffn_up": blk.mlp.up_proj,
            "ffn_down": blk.mlp.down_proj}[kind]


def main():
    path = sys.argv[1]
    out_dir = os.path.dirname(os.path.abspath(__file__))
    folder, name = os.path.split(os.path.abspath(path))
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    weights = [hf_linear(model, l, k).weight for l, k in SLOTS]
    for w in weights:
        w.requires_grad_(True)

    cases, logprobs, loss_total = [], [], 0.0
    for prompt, response in CASES:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}],
                                      add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        ids = [int(i) for i in ids]
        resp = tok(response, add_special_tokens=False)["input_ids"] + [2, 198]  # <|im_end|>\n
        full = ids + [int(i) for i in resp]
        n_prompt = len(ids)
        logits = model(torch.tensor([full])).logits[0]
        lp = torch.log_softmax(logits[n_prompt - 1:-1].double(), dim=-1)
        target = torch.tensor(full[n_prompt:])
        tok_lp = lp.gather(1, target[:, None])[:, 0]
        loss = tok_lp.sum()
        loss.backward()  # gradients of both sequences accumulate
        loss_total += float(loss.detach())
        cases.append({"ids": full, "n_prompt": n_prompt})
        logprobs.append([float(x) for x in tok_lp])
        print(f"{len(full)} tokens, {len(full) - n_prompt} response, "
              f"sum log-prob {float(loss.detach()):.4f}")

    slots, blob = [], []
    for (layer, kind), w in zip(SLOTS, weights):
        W = w.detach().double()
        G = w.grad.double()
        U, s, Vh = torch.linalg.svd(W, full_matrices=False)
        g = ((U.T @ G) * Vh).sum(dim=1)  # u_i^T G v_i
        dz = s * g - (s / s.sum()) * (s * g).sum()
        slots.append({"layer": layer, "kind": kind, "rank": int(s.numel())})
        blob += [s.float().numpy(), dz.float().numpy()]
        print(f"blk.{layer}.{kind}: rank {s.numel()}, max|dz| {float(dz.abs().max()):.4g}")

    with open(os.path.join(out_dir, "svf_grad_reference.json"), "w") as f:
        json.dump({"model": name, "loss": loss_total, "cases": cases, "logprobs": logprobs,
                   "slots": slots}, f)
    np.concatenate(blob).astype("<f4").tofile(os.path.join(out_dir, "svf_grad_reference.bin"))


if __name__ == "__main__":
    main()
