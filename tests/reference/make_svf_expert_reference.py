#!/usr/bin/env python3
"""An SVF expert file written by Python's `safetensors` (independent of t2's
writer), which t2's expert_load must read with exactly these values.

For the default model and the `mlp` set: one F32 tensor [rank] per adapted matrix,
named blk.N.ffn_gate / ffn_up / ffn_down, rank = min(out, in) read from the GGUF.
Value j of the slot at position `slot` (layer-major, kinds gate, up, down) is
((j * 7919 + slot * 104729) % 2001 - 1000) / 1024, exact in f32; slot 0 starts
with -0.0, 1e-40 (subnormal), FLT_MAX, -FLT_MIN and f32(0.1).

  /opt/t2ref/bin/python tests/reference/make_svf_expert_reference.py \
      models/SmolLM2-135M-Instruct.Q4_1.gguf tests/reference/svf_expert_reference.safetensors
"""
import hashlib
import sys

import gguf
import numpy as np
from safetensors.numpy import save_file

KINDS = ["ffn_gate", "ffn_up", "ffn_down"]  # t2's MatrixKind order within the mlp set


def main(model_path, out_path):
    sha = hashlib.sha256()
    with open(model_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)

    reader = gguf.GGUFReader(model_path)
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    n_layer = 1 + max(int(n.split(".")[1]) for n in shapes if n.startswith("blk."))

    tensors = {}
    slot = 0
    for layer in range(n_layer):
        for kind in KINDS:
            rank = min(shapes[f"blk.{layer}.{kind}.weight"])
            j = np.arange(rank, dtype=np.int64)
            p = (((j * 7919 + slot * 104729) % 2001) - 1000).astype(np.float32) / np.float32(1024)
            if slot == 0:
                p[:5] = np.array([-0.0, 1e-40, np.finfo(np.float32).max,
                                  -np.finfo(np.float32).tiny, 0.1], dtype=np.float32)
            tensors[f"blk.{layer}.{kind}"] = p.astype(np.float32)
            slot += 1

    metadata = {
        "format": "t2-svf-expert",
        "format_version": "1",
        "name": "python-fixture",
        "task": "gsm8k",
        "base_model_sha256": sha.hexdigest(),
        "matrix_set": "mlp",
        "parametrization": "sigmoid",
        "training": '{"lr": 0.002, "steps": 3, "written_by": "safetensors.numpy"}',
        "validation_accuracy": "0.625",
        "created": "2025-01-01T00:00:00Z",
    }
    save_file(tensors, out_path, metadata=metadata)
    print(f"wrote {out_path}: {len(tensors)} tensors, model sha256 {sha.hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
