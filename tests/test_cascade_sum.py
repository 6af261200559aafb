"""geomreg.cascade: torch.sum's CPU order on Python floats, bit for bit."""
import pytest
import torch

from geomreg.cascade import cascade_sum


def spread_values(n: int, seed: int) -> torch.Tensor:
    """Float64 values of both signs over 16 decades: the order of a sum shows in its last bits."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-8, 8, (n,), generator=gen)


# every size up to 700 takes the first two levels' paths; the larger ones carry through all four levels
# (level 3 from 16384 elements), below the 32768 from which torch splits a sum over its threads
@pytest.mark.parametrize("sizes", [range(0, 700), [1024, 1025, 4097, 16384, 16389, 32767]], ids=["small", "levels"])
def test_cascade_sum_gives_the_bits_of_torch_sum_over_a_strided_column(sizes):
    mismatches = []
    for n in sizes:
        values = spread_values(3 * n, seed=n)
        listed = values.tolist()
        for column in range(3):
            want = values.view(-1, 3)[:, column].sum().item()  # a stride-3 column, as DAGR's products are laid out
            got = cascade_sum(listed, column, 3, n)
            if got.hex() != want.hex():
                mismatches.append((n, column, want, got))
    assert not mismatches, mismatches[:5]


def test_cascade_sum_follows_the_running_sums_not_the_left_to_right_order():
    # 9 elements: running sums over (0, 4), (1, 5), (2, 6), (3, 7), then 8 into the first, then folded in order
    values = [1e16, 1.0, 1.0, 1.0, -1e16, 1.0, 1.0, 1.0, 1.0]
    assert cascade_sum(values, 0, 1, 9) == ((0.0 + 1e16 - 1e16 + 1.0) + (1.0 + 1.0) + (1.0 + 1.0) + (1.0 + 1.0))
    assert sum(values) != cascade_sum(values, 0, 1, 9)  # left to right, 1e16 swallows the ones
    assert cascade_sum(values, 0, 1, 9) == torch.tensor(values, dtype=torch.float64).sum().item()


def test_cascade_sum_of_nothing_and_of_negative_zero_is_positive_zero():
    assert cascade_sum([], 0, 1, 0).hex() == (0.0).hex()
    negative_zeros = torch.tensor([-0.0, -0.0], dtype=torch.float64)
    assert cascade_sum(negative_zeros.tolist(), 0, 1, 2).hex() == negative_zeros.sum().item().hex()
