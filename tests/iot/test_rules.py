"""Alarm rules: limits with hysteresis, rate of change, staleness, and the rules a registry accepts."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from cim.iot.rules import Rules, evaluate, evaluate_series, status_of


def run(rules: Rules, series: list[tuple[float, float]]) -> list[tuple[float, str, bool]]:
    """(time, rule, raised) of every transition over a series of (time, value)."""
    open_rules: set[str] = set()
    prev_t = prev_v = None
    seen = []
    for t, v in series:
        seen += [(c.time, c.rule, c.raised) for c in evaluate(rules, open_rules, prev_t, prev_v, t, v)]
        prev_t, prev_v = t, v
    return seen


def test_high_limits_raise_above_and_clear_below_limit_minus_deadband():
    rules = Rules(h=5, hh=20, deadband=1)
    values = [1, 5, 5.5, 4.5, 4.2, 21, 19.5, 18.9, 3.9, 6]
    seen = run(rules, list(enumerate(values)))
    # 5 is not above 5; 5.5 raises H; 4.5 and 4.2 lie in the band (4, 5] and keep it; 21 raises HH; 19.5 keeps
    # HH (band 19..20); 18.9 clears HH; 3.9 clears H; 6 raises H again
    assert seen == [(2, "H", True), (5, "HH", True), (7, "HH", False), (8, "H", False), (9, "H", True)]


def test_low_limits_mirror_high_ones():
    rules = Rules(l=0.2, ll=0.15, deadband=0.02)
    seen = run(rules, list(enumerate([0.3, 0.19, 0.21, 0.14, 0.16, 0.171, 0.23])))
    assert seen == [(1, "L", True), (3, "LL", True), (5, "LL", False), (6, "L", False)]


def test_rate_of_change_per_minute():
    rules = Rules(roc=6.0)  # 6 units per minute = 0.1 per second
    # +0.5 in 10 s = 3/min: fine; +2 in 10 s = 12/min: raised; +0.5 in 10 s: back within the limit
    seen = run(rules, [(0, 1.0), (10, 1.5), (20, 3.5), (30, 4.0)])
    assert seen == [(20, "ROC", True), (30, "ROC", False)]


def test_a_reading_clears_staleness_and_status_ranks_alarms():
    open_rules = {"STALE"}
    changes = evaluate(Rules(h=5), open_rules, None, None, 100.0, 1.0)
    assert [(c.rule, c.raised) for c in changes] == [("STALE", False)] and open_rules == set()
    assert status_of(set()) == ("ok", 0)
    assert status_of({"STALE"}) == ("offline", 1)
    assert status_of({"H", "STALE"}) == ("alarm", 2)
    assert status_of({"H", "HH"}) == ("alarm", 3)


@pytest.mark.parametrize("given, reason", [
    ({"h": 5, "hh": 4}, "ll < l < h < hh"), ({"l": 1, "h": 1}, "ll < l < h < hh"),
    ({"deadband": -1}, "greater than or equal"), ({"roc": 0}, "greater than"), ({"hh": float("nan")}, "finite"),
    ({"high": 3}, "Extra inputs"),
])
def test_bad_rules_are_refused(given, reason):
    with pytest.raises(ValidationError, match=reason):
        Rules(**given)


def test_an_alarm_of_a_removed_rule_clears_at_the_next_reading():
    open_rules = {"HH", "H", "ROC"}
    changes = evaluate(Rules(h=5), open_rules, 0.0, 30.0, 10.0, 25.0)  # HH and ROC were removed from its rules
    assert sorted((c.rule, c.raised) for c in changes) == [("HH", False), ("ROC", False)]
    assert open_rules == {"H"}


@pytest.mark.parametrize("seed", range(40))
def test_the_vectorised_evaluation_equals_the_reading_by_reading_one(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    times = np.cumsum(rng.choice([0.0, 0.5, 1.0, 5.0], n))  # repeated times too: no rate between them
    values = np.round(rng.normal(5, 4, n), 1)  # rounding puts readings exactly on limits and band edges
    given = {"ll": 0.0, "l": 2.0, "h": 8.0, "hh": 12.0}
    keep = rng.random(4) < 0.7
    rules = Rules(**{k: v for (k, v), on in zip(given.items(), keep, strict=True) if on},
                  deadband=float(rng.choice([0.0, 0.5, 1.0])),
                  roc=float(rng.choice([30.0, 120.0])) if seed % 3 else None)
    start = set(rng.choice(["HH", "H", "L", "LL", "ROC", "STALE"], int(rng.integers(0, 4)), replace=False).tolist())
    prev = (None, None) if seed % 4 == 0 else (-1.0, float(values[0]) + 3)
    expected, open_a = [], set(start)
    pt, pv = prev
    for t, v in zip(times.tolist(), values.tolist(), strict=True):
        expected += evaluate(rules, open_a, pt, pv, t, v)
        pt, pv = t, v
    open_b = set(start)
    assert evaluate_series(rules, open_b, *prev, times, values) == expected
    assert open_b == open_a
