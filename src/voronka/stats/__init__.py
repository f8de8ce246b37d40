"""Intervals and tests on counts: small pure functions."""

from voronka.stats.bayes import expected_loss, prob_to_beat
from voronka.stats.intervals import wilson, wilson_array
from voronka.stats.multiple import benjamini_hochberg
from voronka.stats.power import effect_size, mde, power, sample_size
from voronka.stats.proportions import binomial_test, exact_test, jeffreys, newcombe_diff, score_test
from voronka.stats.shrinkage import BetaPrior, Shrunk, fit_beta_prior, shrink

__all__ = [
    "BetaPrior",
    "Shrunk",
    "benjamini_hochberg",
    "binomial_test",
    "effect_size",
    "exact_test",
    "expected_loss",
    "fit_beta_prior",
    "jeffreys",
    "mde",
    "newcombe_diff",
    "power",
    "prob_to_beat",
    "sample_size",
    "score_test",
    "shrink",
    "wilson",
    "wilson_array",
]
