#!/usr/bin/env python3
"""Writes a slice of a Llama-architecture GGUF small enough to travel to the device.

The full SmolLM2-135M Q4_1 GGUF (94 MiB) exceeds what a device call carries
(64 MiB with the tree and the staged binaries). The slice keeps the real
weights of the first LAYERS blocks byte for byte, the final norm and the
metadata (tokenizer included, llama.block_count set to LAYERS); the token
embedding (Q8_0, 30 MB, also the tied LM head) is re-quantized to Q4_1
(18 MB). The result is a smaller real-weights model of SmolLM2's exact
architecture (GQA 9/3, d 576, vocabulary 49152), used on the device to
compare the CUDA backend against the CPU backend; it is not SmolLM2's
accuracy.

  bench/gpu/smollm2_slice.py IN.gguf OUT.gguf LAYERS
"""
import struct
import sys

import numpy as np

GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
                10: "Q", 11: "q", 12: "d"}
TYPE_F32, TYPE_F16, TYPE_Q4_1, TYPE_Q8_0 = 0, 1, 3, 8
BLOCK_BYTES = {TYPE_F32: (1, 4), TYPE_F16: (1, 2), TYPE_Q4_1: (32, 20), TYPE_Q8_0: (32, 34)}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        size = struct.calcsize("<" + fmt)
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def skip_value(self, t):
        if t in GGUF_SCALARS:
            self.take(GGUF_SCALARS[t])
        elif t == 8:
            self.string()
        elif t == 9:
            at, n = self.take("IQ")
            for _ in range(n):
                self.skip_value(at)
        else:
            raise ValueError(f"GGUF value type {t}")


def tensor_bytes(ttype, dims):
    per, size = BLOCK_BYTES[ttype]
    n = int(np.prod(dims))
    assert n % per == 0
    return n // per * size


def dequant_q8_0(raw, n):
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(n)


def quant_q4_1(x):
    """ggml's Q4_1: per 32 values f16 d = (max - min) / 15, f16 m = min, nibbles
    q = round((x - m) / d) with element j in the low and j + 16 in the high nibble."""
    b = x.reshape(-1, 32).astype(np.float32)
    lo, hi = b.min(axis=1), b.max(axis=1)
    d = (hi - lo) / 15.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0.0)
    q = np.clip(np.floor((b - lo[:, None]) * inv[:, None] + 0.5), 0, 15).astype(np.uint8)
    out = np.empty((b.shape[0], 20), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).reshape(-1, 1).view(np.uint8)
    out[:, 2:4] = lo.astype(np.float16).reshape(-1, 1).view(np.uint8)
    out[:, 4:] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def main():
    src, dst, layers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = open(src, "rb").read()
    r = Reader(data)
    magic, version, n_tensors, n_kv = r.take("4sIQQ")
    assert magic == b"GGUF" and version == 3, (magic, version)
    kvs, alignment = [], 32
    for _ in range(n_kv):
        start = r.pos
        key = r.string()
        t = r.take("I")
        value_pos = r.pos
        r.skip_value(t)
        raw = data[start:r.pos]
        if key.endswith(".block_count"):
            assert t == 4
            raw = data[start:value_pos] + struct.pack("<I", layers)
        if key == "general.alignment":
            alignment = struct.unpack_from("<I", data, value_pos)[0]
        kvs.append(raw)
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.take("I")
        dims = [r.take("Q") for _ in range(nd)]
        ttype, off = r.take("IQ")
        tensors.append((name, dims, ttype, off))
    base = (r.pos + alignment - 1) // alignment * alignment
    kept = []
    for name, dims, ttype, off in tensors:
        if name.startswith("blk.") and int(name.split(".")[1]) >= layers:
            continue
        raw = data[base + off:base + off + tensor_bytes(ttype, dims)]
        if ttype == TYPE_Q8_0:
            raw, ttype = quant_q4_1(dequant_q8_0(raw, int(np.prod(dims)))), TYPE_Q4_1
        kept.append((name, dims, ttype, raw))
    head = bytearray(struct.pack("<4sIQQ", b"GGUF", 3, len(kept), len(kvs)))
    for raw in kvs:
        head += raw
    offset = 0
    offsets = []
    for name, dims, ttype, raw in kept:
        enc = name.encode("utf-8")
        head += struct.pack("<Q", len(enc)) + enc + struct.pack("<I", len(dims))
        head += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ttype, offset)
        offsets.append(offset)
        offset = (offset + len(raw) + alignment - 1) // alignment * alignment
    with open(dst, "wb") as f:
        f.write(head)
        f.write(b"\0" * ((-len(head)) % alignment))
        for (name, dims, ttype, raw), off in zip(kept, offsets):
            f.write(raw)
            f.write(b"\0" * ((-len(raw)) % alignment))
    print(f"{dst}: {len(kept)} tensors, {layers} of the blocks")


if __name__ == "__main__":
    main()
