#!/usr/bin/env python3
"""PyTorch peer of train_step_bench: one REINFORCE step of an SVF expert in eager
mode on the CPU, on what train_step_bench wrote (same GGUF, prompt ids, p, thread
count; the backward runs on t2's responses so both sides score the same tokens).

  rollout   greedy generation with HF generate (left-padded batch, stops at
            <|im_end|> / <|endoftext|>, at most as many new tokens as t2's
            longest answer), with the expert applied;
  gradient  teacher-forced forward over prompt + response (right-padded), loss =
            -sum_i A_i sum_t log pi(y_t) (+ lambda KL to the base model), backward
            to p (z = sigmoid(p)).

Two ways to write SVF: factored (y = ((x V) * c s z) U^T, what t2 runs) and
materialized (W' = U diag(c s z) V^T built per step, the Transformer^2 reference
code). Prints one JSON line with the best step of each way.

  /opt/t2ref/bin/python bench/adaptation/train_step_bench_torch.py SPEC.json
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM


class SvfLinear(torch.nn.Module):
    """A frozen Linear as SVD factors; z comes from the owner at call time."""

    def __init__(self, weight, owner, index):
        super().__init__()
        U, s, Vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
        self.u, self.s, self.vt = U.float(), s.float(), Vh.float()
        self.w = weight.detach()
        self.owner, self.index = owner, index

    def scale(self):
        sz = self.s * self.owner.z[self.index]
        return sz * (self.s.sum() / sz.sum())

    def forward(self, x):
        if self.owner.base:
            return x @ self.w.T
        if self.owner.mode == "factored":
            return ((x @ self.vt.T) * self.scale()) @ self.u.T
        if self.owner.weights is not None:  # built once for the whole generation
            return x @ self.owner.weights[self.index].T
        return x @ ((self.u * self.scale()) @ self.vt).T


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["threads"])
    model = AutoModelForCausalLM.from_pretrained(
        spec["model_dir"], gguf_file=spec["model_file"], dtype=torch.float32)
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)

    class Owner:
        mode, z, base, weights, layers = "factored", [], False, None, []

    owner = Owner()
    ranks = []
    for layer in model.model.layers:
        for name in ("gate_proj", "up_proj", "down_proj"):
            lin = getattr(layer.mlp, name)
            svf = SvfLinear(lin.weight, owner, len(ranks))
            setattr(layer.mlp, name, svf)
            owner.layers.append(svf)
            ranks.append(min(lin.weight.shape))
    p_all = torch.tensor(spec["p"], dtype=torch.float32)
    im_end, eot = 2, 0
    pad = 2
    prompts, responses = spec["prompts"], spec["responses"]
    adv = torch.tensor(spec["advantages"], dtype=torch.float32)
    kl = spec["kl"]
    n = len(prompts)

    # Left-padded prompts for generation.
    plen = max(len(q) for q in prompts)
    gen_ids = torch.full((n, plen), pad, dtype=torch.long)
    gen_mask = torch.zeros((n, plen), dtype=torch.long)
    for i, q in enumerate(prompts):
        gen_ids[i, plen - len(q):] = torch.tensor(q)
        gen_mask[i, plen - len(q):] = 1

    # Right-padded prompt + response for the gradient; response positions per row.
    seqs = [q + r for q, r in zip(prompts, responses)]
    slen = max(len(s) for s in seqs)
    ids = torch.full((n, slen), pad, dtype=torch.long)
    mask = torch.zeros((n, slen), dtype=torch.long)
    rows, cols, targets, row_adv = [], [], [], []
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
        for t in range(len(prompts[i]), len(s)):
            rows.append(i)
            cols.append(t - 1)  # the logit at t-1 predicts token t
            targets.append(s[t])
            row_adv.append(float(adv[i]))
    rows, cols = torch.tensor(rows), torch.tensor(cols)
    targets, row_adv = torch.tensor(targets), torch.tensor(row_adv)

    def logits_at(inp, m):
        hidden = model.model(input_ids=inp[:, :-1], attention_mask=m[:, :-1]).last_hidden_state
        return model.lm_head(hidden[rows, cols])

    def step(mode):
        owner.mode = mode
        t0 = time.perf_counter()
        # Rollout: the expert's z without gradient.
        with torch.no_grad():
            owner.z = list(torch.split(torch.sigmoid(p_all), ranks))
            owner.weights = None
            if mode == "materialized":
                owner.weights = [(l.u * l.scale()) @ l.vt for l in owner.layers]
            model.generate(input_ids=gen_ids, attention_mask=gen_mask, do_sample=False,
                           max_new_tokens=spec["max_new_tokens"], eos_token_id=[im_end, eot],
                           pad_token_id=pad)
        owner.weights = None
        t1 = time.perf_counter()
        # Gradient: teacher-forced forward and backward to p.
        p = p_all.clone().requires_grad_(True)
        owner.z = list(torch.split(torch.sigmoid(p), ranks))
        ref_lp = None
        if kl > 0:
            with torch.no_grad():
                owner.base = True
                ref_lp = torch.log_softmax(logits_at(ids, mask), dim=-1)
                owner.base = False
        lp = torch.log_softmax(logits_at(ids, mask), dim=-1)
        tok_lp = lp.gather(-1, targets[:, None])[:, 0]
        loss = -(row_adv * tok_lp).sum()
        if ref_lp is not None:
            loss = loss + kl * (ref_lp.exp() * (ref_lp - lp)).sum()
        loss.backward()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, t2 - t0, float(loss.detach()), float(p.grad.norm())

    result = {"engine": "pytorch", "threads": torch.get_num_threads()}
    for mode in ("factored", "materialized"):
        runs = [step(mode) for _ in range(spec["repeats"] + 1)][1:]  # the first: warm-up
        best = min(runs, key=lambda r: r[2])
        result[mode] = {"rollout_seconds": min(r[0] for r in runs),
                        "gradient_seconds": min(r[1] for r in runs),
                        "step_seconds": best[2], "loss": best[3], "grad_norm": best[4]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
