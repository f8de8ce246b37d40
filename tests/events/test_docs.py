"""The examples in the event-funnel docstrings run."""

from __future__ import annotations

import doctest

import pytest

from voronka.analytics.events import query, run


@pytest.mark.parametrize("module", [query, run], ids=lambda m: m.__name__)
def test_docstring_examples(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)  # type: ignore[arg-type]
    assert tried > 0 and failures == 0
