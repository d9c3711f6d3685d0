"""Alarm rules of a sensor and their evaluation: HH/H/L/LL limits with hysteresis, rate of change, staleness."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

# rule → severity (what "worst alarm" compares): limits beyond the outer ones are critical
SEVERITY: dict[str, int] = {"HH": 3, "LL": 3, "H": 2, "L": 2, "ROC": 2, "STALE": 1}


class Rules(BaseModel):
    """A sensor's alarm rules (docs/iot.md); every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hh: float | None = Field(None, allow_inf_nan=False)
    h: float | None = Field(None, allow_inf_nan=False)
    l: float | None = Field(None, allow_inf_nan=False)  # noqa: E741 - the ISA-18.2 name
    ll: float | None = Field(None, allow_inf_nan=False)
    deadband: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Hysteresis: an H alarm clears below h - deadband, an L alarm above l + deadband."""
    roc: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Largest normal rate of change, units per minute (absolute)."""
    stale_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Offline after this many seconds without a reading."""

    @model_validator(mode="after")
    def _ordered(self) -> Rules:
        given = [(name, getattr(self, name)) for name in ("ll", "l", "h", "hh") if getattr(self, name) is not None]
        for (lo_name, lo), (hi_name, hi) in zip(given, given[1:], strict=False):
            if not lo < hi:
                raise ValueError(f"limits must rise ll < l < h < hh, but {lo_name} = {lo} and {hi_name} = {hi}")
        return self

    _limits: tuple[tuple[str, float], ...] = PrivateAttr(())

    def model_post_init(self, context: object) -> None:
        self._limits = tuple((name.upper(), getattr(self, name)) for name in ("hh", "h", "l", "ll")
                             if getattr(self, name) is not None)

    def limits(self) -> tuple[tuple[str, float], ...]:
        """(rule, limit) of the limits given, outer ones first."""
        return self._limits


def explain(exc: ValidationError) -> str:
    """The first reason pydantic gives, as one line a user reads ("h: must be …")."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"


@dataclass(frozen=True)
class Change:
    """One alarm transition found at a reading: raise or clear of a rule."""

    rule: str
    raised: bool
    time: float
    value: float
    limit: float | None = None


def evaluate(rules: Rules, open_rules: set[str], prev_time: float | None, prev_value: float | None,
             time: float, value: float) -> list[Change]:
    """The alarm transitions one reading causes; updates open_rules in place."""
    changes: list[Change] = []
    band = rules.deadband
    for rule, limit in rules.limits():
        high = rule.startswith("H")
        beyond = value > limit if high else value < limit
        back = value < limit - band if high else value > limit + band
        if rule not in open_rules and beyond:
            open_rules.add(rule)
            changes.append(Change(rule, True, time, value, limit))
        elif rule in open_rules and back:
            open_rules.discard(rule)
            changes.append(Change(rule, False, time, value, limit))
    if rules.roc is not None and prev_time is not None and time > prev_time:
        rate = abs(value - prev_value) / (time - prev_time) * 60.0
        if "ROC" not in open_rules and rate > rules.roc:
            open_rules.add("ROC")
            changes.append(Change("ROC", True, time, value, rules.roc))
        elif "ROC" in open_rules and rate <= rules.roc:
            open_rules.discard("ROC")
            changes.append(Change("ROC", False, time, value, rules.roc))
    if "STALE" in open_rules:  # any reading brings the sensor back
        open_rules.discard("STALE")
        changes.append(Change("STALE", False, time, value))
    # an alarm of a rule the sensor no longer has (edited or re-imported since) ends at the next reading
    configured = {rule for rule, _ in rules.limits()} | ({"ROC"} if rules.roc is not None else set())
    for rule in sorted(open_rules - configured):
        open_rules.discard(rule)
        changes.append(Change(rule, False, time, value))
    return changes


def _flips(labels: np.ndarray, is_open: bool) -> tuple[np.ndarray, np.ndarray]:
    """Where a rule's state flips over readings labelled +1 (raise), -1 (clear), 0 (keep): (indices, raised)."""
    lab = np.concatenate(([1 if is_open else -1], labels))
    last = np.where(lab != 0, np.arange(len(lab)), 0)
    np.maximum.accumulate(last, out=last)
    state = lab[last]
    at = np.flatnonzero(state[1:] != state[:-1])
    return at, state[at + 1] > 0


def evaluate_series(rules: Rules, open_rules: set[str], prev_time: float | None, prev_value: float | None,
                    times: np.ndarray, values: np.ndarray) -> list[Change]:
    """`evaluate` over a sensor's readings in time order at once (numpy; what ingest runs), with the same
    transitions in the same order; updates open_rules in place."""
    found: list[tuple[int, int, Change]] = []  # (reading, rank within a reading as evaluate orders them, change)
    band = rules.deadband
    for rank, (rule, limit) in enumerate(rules.limits()):
        if rule.startswith("H"):
            labels = np.where(values > limit, 1, np.where(values < limit - band, -1, 0))
        else:
            labels = np.where(values < limit, 1, np.where(values > limit + band, -1, 0))
        at, up = _flips(labels, rule in open_rules)
        found += [(k, rank, Change(rule, bool(u), float(times[k]), float(values[k]), limit))
                  for k, u in zip(at.tolist(), up.tolist(), strict=True)]
        if len(at):
            (open_rules.add if up[-1] else open_rules.discard)(rule)
    if rules.roc is not None:
        pt = np.concatenate(([np.nan if prev_time is None else prev_time], times[:-1]))
        pv = np.concatenate(([np.nan if prev_value is None else prev_value], values[:-1]))
        dt = times - pt
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.abs(values - pv) / dt * 60.0
        labels = np.where(~(dt > 0), 0, np.where(rate > rules.roc, 1, -1))
        at, up = _flips(labels, "ROC" in open_rules)
        found += [(k, 4, Change("ROC", bool(u), float(times[k]), float(values[k]), rules.roc))
                  for k, u in zip(at.tolist(), up.tolist(), strict=True)]
        if len(at):
            (open_rules.add if up[-1] else open_rules.discard)("ROC")
    if len(values):
        first = Change("STALE", False, float(times[0]), float(values[0]))
        configured = {rule for rule, _ in rules.limits()} | ({"ROC"} if rules.roc is not None else set())
        for rank, rule in enumerate(["STALE", *sorted(open_rules - configured - {"STALE"})], start=5):
            if rule in open_rules:
                open_rules.discard(rule)
                found.append((0, rank, Change(rule, False, first.time, first.value)))
    found.sort(key=lambda f: (f[0], f[1]))
    return [c for _, _, c in found]


def status_of(open_rules: set[str]) -> tuple[str, int]:
    """A sensor's status and severity from its open alarms."""
    severity = max((SEVERITY[r] for r in open_rules), default=0)
    if any(r != "STALE" for r in open_rules):
        return "alarm", severity
    return ("offline", severity) if open_rules else ("ok", 0)


def message(rule: str, value: float | None, limit: float | None, unit: str) -> str:
    if rule == "STALE":
        return f"no reading for more than {limit:g} s"
    if rule == "ROC":
        return f"changing faster than {limit:g} {unit}/min (now {value:g} {unit})"
    side = "above" if rule.startswith("H") else "below"
    return f"{value:g} {unit} is {side} the {rule} limit {limit:g} {unit}"


def finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
