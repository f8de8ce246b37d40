"""What an event funnel counts: :class:`FunnelQuery`, its steps, and the coded rules that validate it.

Terms (the rules themselves, with worked examples, are in ``docs/funnels.md``):

- *entity*: whose path is followed (a user, a session, a lead id) — one column of the log.
- *step*: a condition on one event row: an event name, property predicates, or both.
- *attempt*: a path that starts at one step-1 event and extends step by step.
- *window*: the most time allowed from an attempt's step-1 event to any later step (inclusive).
- *mode*: ``ordered`` (steps in order, other events in between allowed), ``strict`` (no other tracked event may come
  between two steps of an attempt), ``any`` (steps in any order within the window).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from voronka.analytics.events.stages import StageStep
from voronka.errors import InputError

Mode = Literal["ordered", "strict", "any"]
Count = Literal["entities", "attempts"]
Attribution = Literal["first_touch", "last_touch", "step"]
ExclusionPolicy = Literal["keep", "remove"]
AfterRange = Literal["allow", "clip"]
Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains"]
OPS: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains")
MAX_STEPS = 16
MAX_EXCLUSIONS = 8


class FunnelQueryError(InputError):
    """A funnel query breaks a rule; ``code`` names the rule (stable across versions)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} [{code}]")
        self.code = code


_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str | int | float | timedelta, what: str = "--window") -> timedelta:
    """A duration from ``7d``, ``12h``, ``30m``, ``90s``, ``2w``, a number of seconds, or a timedelta."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float):
        return timedelta(seconds=text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*", str(text))
    if not m:
        raise FunnelQueryError(
            "duration.format", f"{what} {text!r} is not a duration: write e.g. 7d, 12h, 30m, 90s, 2w or seconds."
        )
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2) or "s"])


@dataclass(frozen=True)
class Where:
    """A predicate on one column (a property) of the event row: ``column op value``."""

    column: str
    op: Op
    value: Any


@dataclass(frozen=True)
class Step:
    """One funnel step: rows whose event is ``event`` (if given) and that satisfy every ``where``.

    ``within`` bounds the time from the previous step of the same attempt, ``min_gap`` asks for at least that
    much; ``first_time`` keeps only the entity's first-ever row matching the step.
    """

    event: str | None = None
    where: tuple[Where, ...] = ()
    name: str | None = None
    within: timedelta | None = None
    min_gap: timedelta | None = None
    first_time: bool = False

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        parts = [self.event] if self.event else []
        parts += [f"{w.column} {w.op} {w.value!r}" for w in self.where]
        return " & ".join(str(p) for p in parts) or "(any event)"


@dataclass(frozen=True)
class Exclusion:
    """An exclusion step: a matching row between steps ``after`` and ``before`` (1-based) breaks the attempt."""

    step: Step
    after: int = 1
    before: int | None = None  # default: the last step


@dataclass(frozen=True)
class FunnelQuery:
    """An event funnel: steps, window, mode, exclusions, date range and breakdown.

    Examples
    --------
    >>> q = FunnelQuery(steps=("view", "cart", "purchase"), window="1d")
    >>> [s.label for s in q.step_list], q.window_td
    (['view', 'cart', 'purchase'], datetime.timedelta(days=1))
    """

    steps: tuple[Step | StageStep | str, ...]
    window: timedelta | str | int = "7d"
    mode: Mode = "ordered"
    count: Count = "entities"
    exclusions: tuple[Exclusion | str, ...] = ()
    exclusion_policy: ExclusionPolicy = "keep"
    start: datetime | None = None
    end: datetime | None = None
    after_range: AfterRange = "allow"
    by: str | None = None
    attribution: Attribution = "first_touch"
    attribution_step: int | None = None
    confidence: float = 0.95
    tracked: tuple[str, ...] | None = None  # strict mode: events that break an attempt; None = every event
    crm_key: str | None = None  # the event property holding a deal's external id (or id), for stage steps
    step_list: tuple[Step, ...] = field(init=False, repr=False)
    exclusion_list: tuple[Exclusion, ...] = field(init=False, repr=False)
    window_td: timedelta = field(init=False, repr=False)

    def __post_init__(self) -> None:
        steps = tuple(_as_step(s) for s in self.steps)
        excl = tuple(e if isinstance(e, Exclusion) else Exclusion(Step(event=str(e))) for e in self.exclusions)
        for name in ("start", "end"):  # a naive bound is UTC
            value = getattr(self, name)
            if isinstance(value, datetime) and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        object.__setattr__(self, "step_list", steps)
        object.__setattr__(self, "exclusion_list", excl)
        object.__setattr__(self, "window_td", parse_duration(self.window))
        self.validate()

    @property
    def stage_steps(self) -> list[StageStep]:
        return [s for s in self.steps if isinstance(s, StageStep)]

    @property
    def window_us(self) -> int:
        return _us(self.window_td)

    def validate(self) -> None:
        """Check every rule; raise :class:`FunnelQueryError` with the first broken rule's code."""
        for rule in _RULES:
            rule(self)


def _as_step(s: Step | StageStep | str) -> Step:
    if isinstance(s, Step):
        return s
    if isinstance(s, StageStep):
        return Step(event=s.event, name=s.label)
    return Step(event=str(s))


def to_micros(dt: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    aware = dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
    return _us(aware - datetime(1970, 1, 1, tzinfo=UTC))


def _us(td: timedelta) -> int:
    return td.days * 86_400_000_000 + td.seconds * 1_000_000 + td.microseconds


def _fail(code: str, message: str) -> None:
    raise FunnelQueryError(code, message)


def _rule_steps(q: FunnelQuery) -> None:
    n = len(q.step_list)
    if n < 1:
        _fail("steps.empty", "A funnel needs at least one step: give --steps a,b,c.")
    if n > MAX_STEPS:
        _fail("steps.too_many", f"{n} steps is more than {MAX_STEPS}: split the funnel.")
    for i, s in enumerate(q.step_list, 1):
        if s.event is None and not s.where:
            _fail("steps.blank", f"Step {i} matches every event: give an event name or a property predicate.")
        for w in s.where:
            if w.op not in OPS:
                _fail("steps.op", f"Step {i}: operator {w.op!r} is unknown; use one of {', '.join(OPS)}.")
            if w.op in ("in", "not in") and not isinstance(w.value, list | tuple):
                _fail("steps.in_list", f"Step {i}: {w.op!r} needs a list of values, got {w.value!r}.")
        for what, td in (("within", s.within), ("min_gap", s.min_gap)):
            if td is not None and td < timedelta(0):
                _fail("steps.negative", f"Step {i}: {what} {td} is negative; give a positive duration.")
        if i == 1 and (s.within is not None or s.min_gap is not None):
            _fail("steps.first_gap", "Step 1 has no previous step: 'within' and 'min_gap' apply from step 2.")
        if s.within is not None and s.min_gap is not None and s.min_gap > s.within:
            _fail("steps.gap_window", f"Step {i}: min_gap {s.min_gap} exceeds within {s.within}; no path can fit.")


def _rule_window(q: FunnelQuery) -> None:
    if q.window_td <= timedelta(0):
        _fail("window.positive", f"The window {q.window!r} must be positive, e.g. 7d.")


def _rule_mode(q: FunnelQuery) -> None:
    if q.mode not in ("ordered", "strict", "any"):
        _fail("mode.unknown", f"Mode {q.mode!r} is unknown: use ordered, strict or any.")
    if q.count not in ("entities", "attempts"):
        _fail("count.unknown", f"Count {q.count!r} is unknown: use entities or attempts.")
    if q.mode == "any" and any(s.within or s.min_gap for s in q.step_list):
        _fail("mode.any_gaps", "Per-step 'within' / 'min_gap' need an order of steps; they do not apply to mode any.")
    if q.mode == "any" and q.count == "attempts":
        _fail("mode.any_attempts", "Mode any counts entities only; use count='entities'.")
    if q.tracked is not None and q.mode != "strict":
        _fail("mode.tracked", "'tracked' events only matter in strict mode; drop it or use mode strict.")


def _rule_exclusions(q: FunnelQuery) -> None:
    n = len(q.step_list)
    if len(q.exclusion_list) > MAX_EXCLUSIONS:
        _fail("exclusions.too_many", f"At most {MAX_EXCLUSIONS} exclusion steps.")
    if q.exclusion_list and q.mode == "any":
        _fail("exclusions.mode_any", "Exclusions need an order of steps; they do not apply to mode any.")
    if q.exclusion_policy not in ("keep", "remove"):
        _fail("exclusions.policy", f"Exclusion policy {q.exclusion_policy!r} is unknown: use keep or remove.")
    for e in q.exclusion_list:
        before = n if e.before is None else e.before
        if not 1 <= e.after < before <= n:
            _fail(
                "exclusions.range",
                f"Exclusion {e.step.label!r} applies between steps {e.after} and {before}: "
                f"need 1 <= after < before <= {n}.",
            )
        if e.step in q.step_list:
            _fail("exclusions.is_step", f"Exclusion {e.step.label!r} is also a step; an event cannot be both.")


def _rule_range(q: FunnelQuery) -> None:
    if q.start is not None and q.end is not None and q.start >= q.end:
        _fail(
            "range.empty", f"The date range is empty: from {q.start} is not before to {q.end}; the range is [from, to)."
        )
    if q.after_range not in ("allow", "clip"):
        _fail("range.after", f"after_range {q.after_range!r} is unknown: use allow or clip.")


def _rule_breakdown(q: FunnelQuery) -> None:
    if q.attribution not in ("first_touch", "last_touch", "step"):
        _fail(
            "breakdown.attribution", f"Attribution {q.attribution!r} is unknown: use first_touch, last_touch or step."
        )
    if q.attribution == "step":
        if q.attribution_step is None or not 1 <= q.attribution_step <= len(q.step_list):
            _fail("breakdown.step", f"Attribution 'step' needs attribution_step in 1..{len(q.step_list)}.")
    elif q.attribution_step is not None:
        _fail("breakdown.step", "attribution_step is only used with attribution 'step'.")
    if q.by is None and (q.attribution != "first_touch" or q.attribution_step is not None):
        _fail("breakdown.no_by", "Attribution is set but no breakdown column: give by=COLUMN.")
    if q.by is not None and q.mode == "any" and q.attribution != "first_touch":
        _fail("breakdown.mode_any", "Mode any supports first_touch attribution only.")
    if not 0 < q.confidence < 1:
        _fail("confidence.range", f"Confidence {q.confidence!r} must be between 0 and 1, e.g. 0.95.")


def _rule_stages(q: FunnelQuery) -> None:
    if q.stage_steps and not q.crm_key:
        _fail("stages.key", "CRM stage steps need crm_key: the event property that holds the deal's external id.")
    if q.crm_key and not q.stage_steps:
        _fail("stages.unused_key", "crm_key is set but no step is a CRM stage (StageStep); drop crm_key.")
    if q.stage_steps and q.mode == "strict":
        _fail("stages.strict", "Strict mode cannot mix CRM stages with events (they are not one stream); use ordered.")


_RULES = (_rule_stages, _rule_steps, _rule_window, _rule_mode, _rule_exclusions, _rule_range, _rule_breakdown)
