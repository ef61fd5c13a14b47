#!/usr/bin/env python3
"""The validation/test split of `laserd eval --split shuffle`, in plain Python.

An independent implementation of std::mt19937_64 and of the Fisher-Yates shuffle
documented in docs/metrics.md ("Split"), so a split can be reproduced (and
engine/eval/split.cc checked) without laserd. Prints JSON:
{"validation": [...], "test": [...]} with 0-based example indices in file order.

    python3 scripts/seeded_split.py --n 250 --seed 42 [--validation-fraction 0.2]
    python3 scripts/seeded_split.py --n 10 --seed 42 --permutation
"""
import argparse
import json
import math

MASK = (1 << 64) - 1


class MT19937_64:
    """std::mt19937_64 (C++11 [rand.predef]); default seed 5489."""

    def __init__(self, seed=5489):
        self.mt = [0] * 312
        self.mt[0] = seed & MASK
        for i in range(1, 312):
            prev = self.mt[i - 1]
            self.mt[i] = (6364136223846793005 * (prev ^ (prev >> 62)) + i) & MASK
        self.i = 312

    def __call__(self):
        if self.i >= 312:
            for k in range(312):
                y = (self.mt[k] & 0xFFFFFFFF80000000) | (self.mt[(k + 1) % 312] & 0x7FFFFFFF)
                self.mt[k] = self.mt[(k + 156) % 312] ^ (y >> 1) ^ (0xB5026F5AA96619E9 if y & 1 else 0)
            self.i = 0
        x = self.mt[self.i]
        self.i += 1
        x ^= (x >> 29) & 0x5555555555555555
        x ^= (x << 17) & 0x71D67FFFEDA60000
        x ^= (x << 37) & 0xFFF7EEE000000000
        x ^= x >> 43
        return x & MASK


def permutation(n, seed):
    """Fisher-Yates from the back with an unbiased rejection draw."""
    p = list(range(n))
    rng = MT19937_64(seed)
    for i in range(n - 1, 0, -1):
        size = i + 1
        rem = (1 << 64) % size
        while True:
            r = rng()
            if rem == 0 or r < (1 << 64) - rem:
                break
        j = r % size
        p[i], p[j] = p[j], p[i]
    return p


def validation_count(n, fraction):
    if n < 2:
        return 0
    return min(max(math.floor(fraction * n + 1e-9), 1), n - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, required=True, help="number of examples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validation-fraction", type=float, default=0.2)
    ap.add_argument("--permutation", action="store_true", help="print the permutation only")
    a = ap.parse_args()
    p = permutation(a.n, a.seed)
    if a.permutation:
        print(json.dumps(p))
        return
    k = validation_count(a.n, a.validation_fraction)
    print(json.dumps({"validation": sorted(p[:k]), "test": sorted(p[k:])}))


if __name__ == "__main__":
    main()
