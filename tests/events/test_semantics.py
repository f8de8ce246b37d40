"""Hand-computed examples, one per rule and option; the same examples are written out in docs/funnels.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.events.journeys import D, H, by_value, counts, funnel
from voronka.analytics.events import Exclusion, Step, Where

VCB = ("view", "cart", "buy")


def test_latest_entry_extends_the_latest_step1_within_the_window() -> None:
    # views at 0:00 and 0:50, cart at 1:30: 1:30 from the first view (out of a 1 h window), 40 min from the second.
    assert counts({1: [(0, "view"), (50 * 60, "view"), (90 * 60, "cart")]}, VCB, "1h") == [1, 1, 0]


def test_window_is_inclusive_and_counts_from_step1() -> None:
    assert counts({1: [(0, "view"), (1800, "cart"), (3600, "buy")]}, VCB, "1h") == [1, 1, 1]
    assert counts({1: [(0, "view"), (1800, "cart"), (3601, "buy")]}, VCB, "1h") == [1, 1, 0]


def test_equal_times_are_ordered_by_step_whatever_the_file_order() -> None:
    assert counts({1: [(5, "buy"), (5, "cart"), (5, "view")]}, VCB) == [1, 1, 1]


def test_one_event_advances_one_step() -> None:
    steps = ("view", "view", "buy")
    assert counts({1: [(0, "view"), (10, "buy")]}, steps) == [1, 0, 0]
    assert counts({1: [(0, "view"), (5, "view"), (10, "buy")]}, steps) == [1, 1, 1]


def test_a_row_matching_two_steps_extends_an_older_attempt_and_starts_a_new_one() -> None:
    steps = ("view", "view", "buy")
    # the second view extends the attempt of the first (step 2) and also starts its own attempt (step 1)
    assert counts({1: [(0, "view"), (100, "view"), (200, "view"), (300, "buy")]}, steps) == [1, 1, 1]


def test_ordered_allows_other_events_between_steps_strict_does_not() -> None:
    j = {1: [(0, "view"), (10, "search"), (20, "cart")]}
    assert counts(j, VCB[:2]) == [1, 1]
    assert counts(j, VCB[:2], mode="strict") == [1, 0]


def test_strict_later_attempt_may_still_convert() -> None:
    j = {1: [(0, "view"), (10, "search"), (20, "view"), (30, "cart")]}
    assert counts(j, VCB[:2], mode="strict") == [1, 1]


def test_strict_tracked_limits_which_events_break_an_attempt() -> None:
    j = {1: [(0, "view"), (10, "scroll"), (20, "cart")]}
    assert counts(j, VCB[:2], mode="strict", tracked=("search",)) == [1, 1]
    assert counts(j, VCB[:2], mode="strict", tracked=("scroll",)) == [1, 0]


def test_any_order() -> None:
    j = {1: [(0, "cart"), (10, "view")], 2: [(0, "buy"), (2 * D, "view")]}
    assert counts(j, VCB[:2]) == [2, 0]
    assert counts(j, VCB[:2], mode="any") == [2, 1]  # entity 2: buy and view are 2 days apart, out of the window
    r = funnel(j, VCB, mode="any")
    assert [s.entities for s in r.steps] == [2, 1, 0]


def test_exclusion_keep_counts_the_steps_before_it() -> None:
    j = {1: [(0, "view"), (10, "refund"), (20, "cart")], 2: [(0, "view"), (20, "cart")]}
    r = funnel(j, VCB[:2], exclusions=("refund",))
    assert [s.entities for s in r.steps] == [2, 1] and r.removed == 0


def test_exclusion_remove_drops_the_entity() -> None:
    j = {1: [(0, "view"), (10, "refund"), (20, "cart")], 2: [(0, "view"), (20, "cart")]}
    r = funnel(j, VCB[:2], exclusions=("refund",), exclusion_policy="remove")
    assert [s.entities for s in r.steps] == [1, 1] and r.removed == 1


def test_exclusion_only_between_its_steps() -> None:
    j = {1: [(0, "view"), (10, "cart"), (15, "coupon"), (20, "buy")]}
    assert counts(j, VCB, exclusions=(Exclusion(Step("coupon"), after=1, before=2),)) == [1, 1, 1]
    assert counts(j, VCB, exclusions=(Exclusion(Step("coupon"), after=2, before=3),)) == [1, 1, 0]


def test_exclusion_after_the_attempt_passed_its_range_does_not_touch_it() -> None:
    j = {1: [(0, "view"), (10, "cart"), (20, "refund"), (30, "buy")]}
    r = funnel(j, VCB, exclusions=(Exclusion(Step("refund"), after=1, before=2),), exclusion_policy="remove")
    assert [s.entities for s in r.steps] == [1, 1, 1] and r.removed == 0


def test_exclusion_before_an_attempt_does_not_touch_it() -> None:
    j = {1: [(0, "refund"), (10, "view"), (20, "cart")]}
    assert counts(j, VCB[:2], exclusions=("refund",), exclusion_policy="remove") == [1, 1]


def test_per_step_window_and_minimum_gap() -> None:
    steps = ("view", Step("cart", within=timedelta(minutes=10)))
    assert counts({1: [(0, "view"), (11 * 60, "cart")]}, steps) == [1, 0]
    assert counts({1: [(0, "view"), (9 * 60, "cart")]}, steps) == [1, 1]
    gap = ("view", Step("cart", min_gap=timedelta(minutes=1)))
    assert counts({1: [(0, "view"), (30, "cart")]}, gap) == [1, 0]
    assert counts({1: [(0, "view"), (30, "cart"), (120, "cart")]}, gap) == [1, 1]


def test_first_time_only_step() -> None:
    j = {1: [(0, "view"), (10 * D, "view"), (10 * D + H, "cart")]}
    assert counts(j, VCB[:2]) == [1, 1]
    assert counts(j, (Step("view", first_time=True), "cart")) == [1, 0]


def test_count_attempts_follow_each_attempt_forward() -> None:
    j = {1: [(0, "view"), (10, "cart"), (100, "view"), (5 * D, "view"), (5 * D + 10, "cart")]}
    assert counts(j, VCB[:2], count="attempts") == [3, 2]


def test_date_range_step1_must_be_in_range_later_steps_may_follow() -> None:
    jan31 = int((datetime(2026, 1, 31, 23, tzinfo=UTC) - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds())
    j = {1: [(jan31, "view"), (jan31 + 2 * H, "cart")], 2: [(-D, "view"), (H, "cart")]}
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    assert counts(j, VCB[:2], start=start, end=end) == [1, 1]
    assert counts(j, VCB[:2], start=start, end=end, after_range="clip") == [1, 0]


def test_predicate_steps() -> None:
    j = {
        1: [(0, "view", {"price": 50}), (10, "cart", {"price": 50})],
        2: [(0, "view", {"price": 500}), (10, "cart", {"price": 500})],
    }
    steps = (Step("view", where=(Where("price", ">=", 100),), name="expensive view"), "cart")
    r = funnel(j, steps)
    assert [s.name for s in r.steps] == ["expensive view", "cart"]
    assert [s.entities for s in r.steps] == [1, 1]
    assert counts(j, (Step(where=(Where("price", "in", [50]),)), "cart")) == [1, 1]


def test_breakdown_first_touch_is_the_entitys_earliest_row_even_a_non_step_row() -> None:
    j = {
        1: [(0, "visit", {"ch": "ads"}), (10, "view", {"ch": "seo"}), (20, "cart", {"ch": "seo"})],
        2: [(0, "view", {"ch": "seo"})],
        3: [(5, "view", {"ch": "b"}), (5, "visit", {"ch": "a"})],  # a tie: the smallest value
    }
    r = funnel(j, VCB[:2], by="ch")
    assert by_value(r) == {"ads": [1, 1], "seo": [1, 0], "a": [1, 0]}


def test_breakdown_last_touch_and_step_attribution() -> None:
    j = {1: [(0, "view", {"ch": "ads"}), (10, "cart", {"ch": "seo"})], 2: [(0, "view", {"ch": "seo"})]}
    assert by_value(funnel(j, VCB[:2], by="ch", attribution="last_touch")) == {"seo": [2, 1]}
    r = funnel(j, VCB[:2], by="ch", attribution="step", attribution_step=2)
    assert by_value(r) == {"(none)": [1, 0], "seo": [1, 1]}


def test_times_from_previous_and_from_start() -> None:
    j = {1: [(0, "view"), (60, "cart"), (180, "buy")], 2: [(0, "view"), (120, "cart"), (200, "buy")]}
    s = funnel(j, VCB).steps
    assert s[1].median_seconds_from_previous == 90 and s[1].p90_seconds_from_previous == pytest.approx(114)
    assert s[2].median_seconds_from_previous == 100 and s[2].median_seconds_from_start == 190
    assert s[0].median_seconds_from_previous is None
    assert sum(s[1].histogram_from_previous) == 2 and s[2].histogram_from_start == [0, 2, 0, 0, 0, 0, 0, 0, 0, 0]


def test_times_are_those_of_the_attempt_that_first_reached_the_furthest_step() -> None:
    j = {1: [(0, "view"), (100, "cart"), (200, "view"), (210, "cart")]}
    assert funnel(j, VCB[:2]).steps[1].median_seconds_from_previous == 100


def test_conversions_and_intervals() -> None:
    j = {i: [(0, "view")] + ([(10, "cart")] if i < 4 else []) for i in range(10)}
    s = funnel(j, VCB[:2]).steps
    assert (s[0].entities, s[1].entities) == (10, 4)
    assert s[1].conversion == 0.4 and s[1].conversion_from_start == 0.4
    assert s[1].ci_low == pytest.approx(0.1682, abs=1e-4) and s[1].ci_high == pytest.approx(0.6873, abs=1e-4)
    assert s[0].conversion is None and s[0].dropped == 6


def test_drill_down_entity_ids() -> None:
    j = {"a": [(0, "view"), (10, "cart")], "b": [(0, "view")], "c": [(0, "view"), (5, "cart"), (9, "buy")]}
    r = funnel(j, VCB)
    assert r.entity_ids(2) == ["a", "c"]
    assert r.entity_ids(2, dropped=True) == ["a"]
    assert r.entity_ids(1, dropped=True) == ["b"]
    assert r.entity_ids(3, dropped=True) == []


def test_conversion_over_time() -> None:
    j = {1: [(0, "view"), (10, "cart")], 2: [(0, "view")], 3: [(8 * D, "view"), (8 * D + 1, "cart")]}
    frame = funnel(j, VCB[:2], "1d").over_time("week")
    assert frame["entered"].tolist() == [2, 1] and frame["converted"].tolist() == [1, 1]


def test_entities_without_a_step1_are_not_counted() -> None:
    assert counts({1: [(0, "cart"), (10, "buy")], 2: [(0, "view")]}, VCB) == [1, 0, 0]


def test_empty_log() -> None:
    r = funnel({}, VCB)
    assert [s.entities for s in r.steps] == [0, 0, 0] and r.steps[1].conversion is None


def test_strict_tracked_keeps_rows_of_predicate_steps() -> None:
    j = {1: [(0, "view", {"price": 500}), (10, "scroll", {"price": 0}), (20, "cart", {"price": 0})]}
    steps = (Step(where=(Where("price", ">=", 100),), name="expensive"), "cart")
    assert counts(j, steps, mode="strict", tracked=("search",)) == [1, 1]
