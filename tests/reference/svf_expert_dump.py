#!/usr/bin/env python3
"""Reads a safetensors file with Python's `safetensors` and prints it as JSON:
{"metadata": {...}, "tensors": {name: {"dtype", "shape", "values"}}}. Floats are
printed exactly (f32 -> Python float is exact; JSON keeps every digit), so a test
can compare t2's writer bit for bit. Used by tests/backbone/svf_expert_test.cpp.

  .venv/bin/python tests/reference/svf_expert_dump.py FILE   (scripts/setup.sh makes .venv)
"""
import json
import sys

from safetensors import safe_open


def main(path):
    out = {"metadata": {}, "tensors": {}}
    with safe_open(path, framework="np") as f:
        out["metadata"] = f.metadata() or {}
        for name in f.keys():
            t = f.get_tensor(name)
            out["tensors"][name] = {"dtype": str(t.dtype), "shape": list(t.shape),
                                    "values": [float(v) for v in t.reshape(-1)]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
