"""Nearest-rank percentiles of the function statistics."""

from __future__ import annotations

import pytest

from perdure.query import percentile


def test_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 .. 100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(list(reversed(values)), 99) == 99.0
    assert percentile([3.0], 50) == 3.0 == percentile([3.0], 99)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0
    assert percentile([], 50) is None


@pytest.mark.parametrize("p", [1, 25, 50, 75, 99, 100])
def test_a_percentile_is_one_of_the_values(p: float) -> None:
    values = [0.5, 0.1, 9.0, 3.3, 2.2]
    assert percentile(values, p) in values
