"""Response-time histograms: Locust's rounding, merging and nearest-rank percentiles.

Kept as ``{rounded milliseconds: count}`` like Locust's own ``response_times``, so a
second of traffic costs a few dozen integers whatever the request rate, and
histograms from several workers or seconds merge by adding counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

Histogram = dict[int, int]


def round_ms(response_time_ms: float) -> int:
    """Two significant digits from 100 ms up, as Locust rounds (bounded bucket count)."""
    value = round(response_time_ms)
    if value < 100:
        return value
    if value < 1000:
        return round(value, -1)
    if value < 10000:
        return round(value, -2)
    return round(value, -3)


def merge(histograms: Iterable[Mapping[int, int]]) -> Histogram:
    merged: Histogram = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            merged[bucket] = merged.get(bucket, 0) + count
    return merged


def percentile(histogram: Mapping[int, int], quantile: float) -> float | None:
    """Nearest-rank percentile: the smallest bucket at or below which ``quantile`` of it lies."""
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = math.ceil(quantile * total)
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return float(bucket)
    raise AssertionError("unreachable: the ranks add up to the total")  # pragma: no cover
