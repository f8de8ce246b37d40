"""Intervals and tests on counts: small pure functions."""

from voronka.stats.intervals import wilson, wilson_array

__all__ = ["wilson", "wilson_array"]
