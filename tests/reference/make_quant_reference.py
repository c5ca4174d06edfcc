#!/usr/bin/env python3
"""Reference blocks for t2's dequantizers (tests/backbone/quant_test.cpp), made by
an independent implementation: the `gguf` Python package's numpy quantizers and
dequantizers.

For each type, quantized blocks come from gguf's quantizer run on deterministic
random data (for the types it can quantize), raw blocks from random bytes with
finite, moderate scale fields (for every type; the only source for the K-quants,
which gguf cannot quantize). gguf dequantizes all of them.

Writes tests/reference/quant_reference/<TYPE>.bin, little-endian:
  char[4] "T2QR", u32 format version (1), u32 ggml type id,
  u32 elements per block, u32 bytes per block,
  u32 n_quantized, u32 n_raw                 (blocks; F32/F16/BF16 blocks are 1 element)
  f32 source[n_quantized * elements]         (what gguf quantized)
  u8  blocks[(n_quantized + n_raw) * bytes]  (quantized blocks first, then raw)
  f32 expected[(n_quantized + n_raw) * elements]  (gguf's dequantization)

  /opt/t2ref/bin/python tests/reference/make_quant_reference.py
"""
import os
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

# (type, quantized blocks, raw blocks)
PLAN = [
    (T.F32, 256, 64),
    (T.F16, 256, 64),
    (T.BF16, 256, 64),
    (T.Q8_0, 8, 4),
    (T.Q4_0, 8, 4),
    (T.Q4_1, 8, 4),
    (T.Q5_0, 8, 4),
    (T.Q5_1, 8, 4),
    (T.Q4_K, 0, 4),
    (T.Q5_K, 0, 4),
    (T.Q6_K, 0, 4),
]

# Byte ranges of the f16 scale fields (d, m, dmin) in each block; raw blocks get
# finite values there so the comparison is about the bit layout, not inf * 0.
SCALE_FIELDS = {
    T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def source_values(rng, n):
    """Random f32 data with the awkward values a converter meets: zeros, constant
    runs, outliers, tiny and huge magnitudes (f16 subnormals and overflow)."""
    x = rng.standard_normal(n).astype(np.float32)
    x[::17] *= 8.0
    x[5:9] = 0.0
    specials = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 1e6, -1e6, 6e-8, 3e-8,
                         1e-5, -1e-7, 2.0 ** -24, 2.0 ** -25, 0.333333, np.inf, -np.inf,
                         np.nan], dtype=np.float32)
    if n >= 256:
        x[200:200 + len(specials)] = specials
        x[240:256] = x[240]  # a constant run
    return x


def raw_blocks(rng, qtype, n_blocks):
    _, type_size = GGML_QUANT_SIZES[qtype]
    if qtype == T.F32:
        return rng.standard_normal(n_blocks).astype(np.float32).view(np.uint8)
    if qtype in (T.F16, T.BF16):
        # Any bit pattern is a value (NaNs included): test the conversion itself.
        return rng.integers(0, 1 << 16, n_blocks, dtype=np.uint16).view(np.uint8)
    blocks = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    for at in SCALE_FIELDS[qtype]:
        scale = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        blocks[:, at:at + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(-1)


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant_reference")
    os.makedirs(out_dir, exist_ok=True)
    for qtype, n_quant, n_raw in PLAN:
        rng = np.random.default_rng(1000 + int(qtype))
        elements, type_size = GGML_QUANT_SIZES[qtype]
        source = source_values(rng, n_quant * elements)
        if elements > 1:
            source = source[np.isfinite(source)]  # block quantizers assume finite input
            source = np.resize(source, n_quant * elements)
        quantized = np.zeros(0, dtype=np.uint8)
        if n_quant:
            with np.errstate(over="ignore", invalid="ignore"):
                quantized = quantize(source, qtype).view(np.uint8).reshape(-1)
        blocks = np.concatenate([quantized, raw_blocks(rng, qtype, n_raw)])
        assert blocks.size == (n_quant + n_raw) * type_size
        with np.errstate(over="ignore", invalid="ignore"):
            expected = dequantize(blocks, qtype).astype(np.float32).reshape(-1)
        assert expected.size == (n_quant + n_raw) * elements

        path = os.path.join(out_dir, f"{qtype.name}.bin")
        with open(path, "wb") as f:
            f.write(b"T2QR")
            f.write(struct.pack("<6I", 1, int(qtype), elements, type_size, n_quant, n_raw))
            f.write(source.astype("<f4").tobytes())
            f.write(blocks.tobytes())
            f.write(expected.astype("<f4").tobytes())
        print(f"{qtype.name:5s} {n_quant} quantized + {n_raw} raw blocks -> {path}")


if __name__ == "__main__":
    main()
