"""Response-time histograms: rounding like Locust, merging, nearest-rank percentiles."""

from __future__ import annotations

import pytest

from loadtests.histogram import merge, percentile, round_ms


@pytest.mark.parametrize(
    ("value", "bucket"),
    [(0.4, 0), (57.6, 58), (99.4, 99), (123, 120), (996, 1000), (4567, 4600), (12_345, 12_000)],
)
def test_response_times_round_to_two_significant_digits_from_100_ms(
    value: float, bucket: int
) -> None:
    assert round_ms(value) == bucket


def test_merging_adds_counts_per_bucket() -> None:
    assert merge([{10: 1, 20: 2}, {20: 3, 30: 1}, {}]) == {10: 1, 20: 5, 30: 1}


def test_percentiles_are_nearest_rank() -> None:
    histogram = dict.fromkeys(range(1, 101), 1)  # 1..100 ms once each
    assert percentile(histogram, 0.5) == 50
    assert percentile(histogram, 0.95) == 95
    assert percentile(histogram, 0.99) == 99
    assert percentile(histogram, 1.0) == 100


def test_a_slow_tail_shows_in_p99_but_not_p95() -> None:
    histogram = {20: 980, 5000: 20}
    assert percentile(histogram, 0.95) == 20
    assert percentile(histogram, 0.99) == 5000


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile({}, 0.95) is None


@pytest.mark.parametrize("quantile", [0, -0.1, 1.5])
def test_a_quantile_outside_zero_to_one_is_refused(quantile: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        percentile({1: 1}, quantile)
