"""The seed of each item's generator: numpy's ``SeedSequence([epoch_seed, row])``, for an epoch at once.

Every augmentation stream of the suite starts from these seeds, so they must stay numpy's bit for bit;
numpy's own class takes some 15 µs per item (several times more between a loader's image kernels), a
share of a cached item's time. The hash below is numpy's (O'Neill's ``seed_seq``,
``numpy/random/bit_generator.pyx``) with its default pool of 4 words, each step run on the arrays of
all the rows.
"""
from __future__ import annotations

import numpy as np

POOL = 4  # words, numpy's default pool size
MASK32 = 0xFFFFFFFF
INIT_A, MULT_A, INIT_B, MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
MIX_MULT_L, MIX_MULT_R = 0xCA01F9DD, 0x4973F715


def constants(init: int, mult: int, n: int) -> np.ndarray:
    """The hash constant of each successive hash: ``init``, ``init·mult``, ... (mod 2**32); a hash
    XORs the value with its constant and multiplies it by the next one."""
    out = [init]
    for _ in range(n - 1):
        out.append(out[-1] * mult & MASK32)
    return np.array(out, np.uint64)


HASH_A = constants(INIT_A, MULT_A, POOL + POOL * (POOL - 1) + 1)  # filling the pool, then mixing it
HASH_B = constants(INIT_B, MULT_B, 3)  # the two 32-bit halves of the output


def item_seeds(epoch_seed: int, rows: list[int]) -> list[int]:
    """``SeedSequence([epoch_seed, row]).generate_state(1, np.uint64)[0] >> 1`` for each row (below
    2**32): numpy's steps, in its order, on arrays of all the rows."""
    words = uint32_words(epoch_seed)
    rows = np.asarray(rows, np.uint64)
    if len(words) >= POOL or (rows > MASK32).any():
        raise ValueError(f"item seeds take epoch seeds below 2**{32 * (POOL - 1)} and rows below 2**32")
    n = len(rows)
    zeros = [np.zeros(n, np.uint64)] * (POOL - 1 - len(words))  # numpy hashes 0 for a word the entropy lacks
    entropy = [np.full(n, w, np.uint64) for w in words] + [rows] + zeros
    pool = [hashmix(word, HASH_A[k], HASH_A[k + 1]) for k, word in enumerate(entropy)]
    k = POOL
    for src in range(POOL):  # mix every word into every other one
        for dst in range(POOL):
            if dst != src:
                pool[dst] = mix(pool[dst], hashmix(pool[src], HASH_A[k], HASH_A[k + 1]))
                k += 1
    low, high = (hashmix(pool[i], HASH_B[i], HASH_B[i + 1]) for i in range(2))  # generate_state's 2 words
    return ((low | high << np.uint64(32)) >> np.uint64(1)).tolist()


def uint32_words(n: int) -> list[int]:
    """numpy's words of a non-negative int: little-endian 32-bit words, 0 as one word."""
    if n < 0:
        raise ValueError(f"seeds are non-negative, got {n}")
    words = [n & MASK32]
    while n > MASK32:
        n >>= 32
        words.append(n & MASK32)
    return words


def hashmix(value: np.ndarray, xor: np.uint64, mult: np.uint64) -> np.ndarray:
    value = (value ^ xor) * mult & MASK32
    return value ^ value >> np.uint64(16)


def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = (np.uint64(MIX_MULT_L) * x - np.uint64(MIX_MULT_R) * y) & MASK32  # mod 2**64, then 2**32
    return result ^ result >> np.uint64(16)
