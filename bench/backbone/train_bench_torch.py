#!/usr/bin/env python3
"""PyTorch peer of train_bench: one SVF training step (forward + backward to z) on
the batch train_bench wrote (same GGUF, token ids, z and thread count), in eager
mode on the CPU. Two ways to write SVF in PyTorch:

  factored      y = ((x V) * c s z_seq) U^T, a z per sequence (what t2 runs);
  materialized  W' = U diag(c s z) V^T once per step, shared by the batch (the
                Transformer^2 reference code), then the dense model.

Only the MLP matrices are adapted (the default set). Logits are computed for the
response rows only; loss = -sum of response log-probs. Prints one JSON line with
the best step time (wall and process CPU) of each way, the loss and |dz|.

  /opt/t2ref/bin/python bench/backbone/train_bench_torch.py SPEC.json
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
        self.owner, self.index = owner, index

    def forward(self, x):
        z = self.owner.z[self.index]  # [B, r] (factored) or [r] (materialized)
        sz = self.s * z
        scale = sz * (self.s.sum() / sz.sum(dim=-1, keepdim=True))
        if self.owner.mode == "factored":
            return ((x @ self.vt.T) * scale[:, None, :]) @ self.u.T
        w = (self.u * scale) @ self.vt
        return x @ w.T


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["threads"])
    model = AutoModelForCausalLM.from_pretrained(
        spec["model_dir"], gguf_file=spec["model_file"], dtype=torch.float32)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    class Owner:
        mode, z = "factored", []

    owner = Owner()
    slots = []
    for layer in model.model.layers:
        for name in ("gate_proj", "up_proj", "down_proj"):
            lin = getattr(layer.mlp, name)
            setattr(layer.mlp, name, SvfLinear(lin.weight, owner, len(slots)))
            slots.append(lin.weight.shape)
    ids = torch.tensor(spec["ids"])  # [B, T], equal lengths
    n_prompt = spec["n_prompt"]
    z_all = torch.tensor(spec["z"], dtype=torch.float32)  # every slot, slot order
    ranks = [min(s) for s in slots]
    z_slots = list(torch.split(z_all, ranks))
    batch = ids.shape[0]

    def step(mode):
        owner.mode = mode
        if mode == "factored":
            owner.z = [z[None, :].repeat(batch, 1).requires_grad_(True) for z in z_slots]
        else:
            owner.z = [z.clone().requires_grad_(True) for z in z_slots]
        t0, c0 = time.perf_counter(), time.process_time()
        hidden = model.model(ids[:, :-1]).last_hidden_state[:, n_prompt - 1:]
        logits = model.lm_head(hidden)
        lp = torch.log_softmax(logits, dim=-1)
        loss = -lp.gather(-1, ids[:, n_prompt:, None]).sum()
        loss.backward()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        # The gradient of one z shared by the batch: per-sequence ones summed.
        grads = [z.grad.sum(0) if mode == "factored" else z.grad for z in owner.z]
        dz_norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
        return dt, dc, float(loss.detach()), float(dz_norm)

    result = {"engine": "pytorch", "threads": torch.get_num_threads()}
    for mode in ("factored", "materialized"):
        steps = [step(mode) for _ in range(spec["repeats"] + 1)][1:]  # after a warm-up
        result[mode] = {"seconds": min(s[0] for s in steps),
                        "cpu_seconds": min(s[1] for s in steps),
                        "loss": steps[-1][2], "dz_norm": steps[-1][3]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
