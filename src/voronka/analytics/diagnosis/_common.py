"""Small shared pieces of the diagnosis reports: result serialisation and period helpers."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

DRAWS = 20_000  # Monte Carlo draws from the posteriors; the seed is fixed so that reports repeat exactly
SEED = 20_261


def clean(value: Any) -> Any:
    """A JSON-ready copy: dataclasses to dicts, NaN to None, numpy scalars to Python, times to ISO text."""
    if is_dataclass(value) and not isinstance(value, type):
        return clean(asdict(value))
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class Result:
    """Mixin: ``to_dict`` / ``to_json`` for a result dataclass."""

    def to_dict(self) -> dict[str, Any]:
        return clean(self)  # type: ignore[no-any-return]

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)


def interval(draws: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Median and the equal-tailed interval of Monte Carlo draws."""
    tail = (1 - confidence) / 2
    lo, mid, hi = np.quantile(draws, [tail, 0.5, 1 - tail])
    return float(mid), float(lo), float(hi)


def months_between(start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Length of ``[start, end)`` in average months (30.44 days)."""
    return max((end - start).total_seconds() / 86_400 / 30.4375, 1e-9)
