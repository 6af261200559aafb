"""PyTorch's CPU summation order for floating-point tensors, in Python floats.

``torch.sum`` of a strided float64 vector on the CPU (ATen's ``cascade_sum``, ``SumKernel.cpp``) keeps four
running sums over interleaved elements and folds them through up to four levels of partial sums, so that
only numbers of a similar size are added. :func:`cascade_sum` follows it operation for operation: on
Python floats (IEEE doubles) it gives the bits ``torch.sum`` gives, which lets :mod:`geomreg.pareto` finish
α* on the host instead of in some thirty small tensor operations. ``tests/test_cascade_sum.py`` compares
the two for every size up to 700 and for sizes that fold through every level. It holds below 32768 elements
(ATen's grain size): a longer sum is split over torch's threads; α* sums one term per parameter tensor.
"""
from __future__ import annotations

from collections.abc import Sequence

ROWS = 4  # the interleaved running sums (ATen's ilp_factor)
LEVELS = 4  # the levels of partial sums (ATen's num_levels)


def cascade_sum(values: Sequence[float], start: int, stride: int, size: int) -> float:
    """The sum of ``values[start + i * stride]`` for ``i < size``, in ``torch.sum``'s order on the CPU.

    ATen's ``row_sum``: the elements as rows of ``ROWS``, summed row by row (:func:`_multi_row_sum`),
    the leftover elements added to the first running sum, then the running sums added in order. The
    result is added to 0.0, as ATen adds it into a zeroed output (-0.0 becomes 0.0)."""
    whole_rows = size // ROWS
    sums = _multi_row_sum(values, start, stride * ROWS, stride, whole_rows)
    for i in range(whole_rows * ROWS, size):
        sums[0] += values[start + i * stride]
    total = sums[0]
    for partial in sums[1:]:
        total += partial
    return 0.0 + total


def _multi_row_sum(values: Sequence[float], start: int, row_stride: int, column_stride: int,
                   rows: int) -> list[float]:
    """ATen's ``multi_row_sum``: ``ROWS`` column sums over ``rows`` rows. Each block of ``2**power`` rows
    is summed at level 0 and carried up a level, and further up while the row count is a multiple of
    the next level's block, so each level holds the sum of a few similar partial sums."""
    power = max(4, _ceil_log2(rows) // LEVELS)
    block = 1 << power
    levels = [[0.0] * ROWS for _ in range(LEVELS)]
    row = 0
    while row + block <= rows:
        for _ in range(block):
            _add_row(levels[0], values, start + row * row_stride, column_stride)
            row += 1
        for level in range(1, LEVELS):
            below, here = levels[level - 1], levels[level]
            for k in range(ROWS):
                here[k] += below[k]
                below[k] = 0.0
            if row & ((block - 1) << (level * power)):
                break
    while row < rows:
        _add_row(levels[0], values, start + row * row_stride, column_stride)
        row += 1
    for level in range(1, LEVELS):
        for k in range(ROWS):
            levels[0][k] += levels[level][k]
    return levels[0]


def _add_row(sums: list[float], values: Sequence[float], base: int, column_stride: int) -> None:
    for k in range(ROWS):
        sums[k] += values[base + k * column_stride]


def _ceil_log2(n: int) -> int:
    return 0 if n <= 1 else (n - 1).bit_length()
