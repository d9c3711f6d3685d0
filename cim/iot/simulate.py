"""Simulated sensor readings (docs/iot.md kinds): smooth diurnal cycles and noise per kind, with a seeded schedule of
anomalies (excursions past a limit and back, rate-of-change spikes, sensors falling silent) and forced values.

Every reading is a pure function of (seed, sensor, reading number, time), so the readings do not depend on how the
time is cut into calls, and `backfill` draws the history before the start from the same model.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time as _time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cim.iot.ingest import Ingest

Reading = tuple[str, float, float]
LOCAL = 8 * 3600  # Asia/Shanghai: the diurnal cycles follow local time
JITTER = 0.1  # a reading comes up to this fraction of its interval early or late
EPISODE_EVERY = 120.0  # simulated seconds between the starts of two anomaly episodes
_CYCLE = ("exceed", "spike", "exceed", "spike", "exceed", "silent")
_M2, _S2 = 12.4206 * 3600, 12.0 * 3600  # principal lunar and solar semidiurnal tide periods
_LIMITS = ("hh", "h", "l", "ll")
# building use → (night base, day top, on hour, off hour) as fractions of the peak load
_USES = {"residential": (0.3, 0.45, 6.5, 23.0), "commercial": (0.25, 0.95, 9.5, 22.0),
         "office": (0.2, 0.95, 8.0, 18.5), "industrial": (0.5, 0.95, 7.5, 20.0), "public": (0.2, 0.85, 8.5, 18.0),
         "school": (0.1, 0.9, 7.5, 17.0), "hospital": (0.65, 0.95, 8.0, 18.0)}
_SHAPES = ("flat", "demand", "demand2", "afternoon", "tide", *(f"use:{u}" for u in _USES))


@dataclass(frozen=True)
class SensorSpecs:
    """What the simulator needs of each sensor, one array entry per sensor (NaN where a rule is not set)."""

    ids: np.ndarray
    kind: np.ndarray
    interval_s: np.ndarray
    stale_s: np.ndarray
    hh: np.ndarray
    h: np.ndarray
    l: np.ndarray  # noqa: E741 - the ISA-18.2 name
    ll: np.ndarray
    deadband: np.ndarray
    roc: np.ndarray
    use: np.ndarray  # building use of building_energy sensors (None elsewhere)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_records(cls, records: Iterable[Mapping]) -> SensorSpecs:
        """Specs from dicts with the docs/iot.md fields (id and kind required)."""
        f = pd.DataFrame(list(records))
        if f.empty or not {"id", "kind"} <= set(f.columns):
            raise ValueError("sensors need at least the fields id and kind")

        def num(name: str, default: float = np.nan) -> np.ndarray:
            col = f[name] if name in f.columns else pd.Series(np.nan, index=f.index)
            return pd.to_numeric(col, errors="coerce").fillna(default).to_numpy(float)

        interval = num("interval_s", 60.0)
        interval = np.where(interval > 0, interval, 60.0)
        stale = num("stale_s")
        use = f["use"] if "use" in f.columns else pd.Series(None, index=f.index, dtype=object)
        return cls(f["id"].astype(str).to_numpy(object), f["kind"].astype(str).to_numpy(object), interval,
                   np.where(stale > 0, stale, 3 * interval), *(num(k) for k in _LIMITS), num("deadband", 0.0),
                   num("roc"), use.where(use.notna(), None).to_numpy(object))


def load_sensors(source: Path | str | Iterable[Mapping]) -> SensorSpecs:
    """Sensor specs from a sensors file (GeoJSON or CSV, docs/iot.md) or from dicts of its fields."""
    if not isinstance(source, str | Path):
        return SensorSpecs.from_records(source)
    path = Path(source)
    if path.suffix.lower() == ".csv":
        return SensorSpecs.from_records(pd.read_csv(path).to_dict("records"))
    doc = json.loads(path.read_text(encoding="utf-8"))
    features = doc["features"] if isinstance(doc, dict) else doc
    return SensorSpecs.from_records(f.get("properties", f) for f in features)


@dataclass(frozen=True)
class Episode:
    """One scheduled anomaly: an excursion past a limit ("exceed"), a one-reading jump ("spike") or silence."""

    kind: str
    sensor: str
    index: int
    start: float
    end: float
    rule: str | None = None  # exceed: the limit crossed, "H", "HH", "L" or "LL"
    limit: float | None = None
    value: float | None = None  # exceed: the value held past the limit
    reading: int | None = None  # spike: the number of the reading that jumps


# -- counter-based randomness: a value per (seed, keys), whatever order things are asked in ----------------------
_MUL1, _MUL2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * _MUL1
    x = x ^ (x >> np.uint64(27))
    x = x * _MUL2
    return x ^ (x >> np.uint64(31))


def _uniform(seed: int, *keys: np.ndarray) -> np.ndarray:
    """Uniform (0, 1) numbers, one per element of the broadcast keys (integers, negative ones too)."""
    keys = np.broadcast_arrays(*(np.atleast_1d(np.asarray(k, np.int64)) for k in keys))
    with np.errstate(over="ignore"):
        h = np.full(keys[0].shape, np.uint64(seed % 2**64))
        for k in keys:
            h = _mix(h ^ (k.view(np.uint64) + _GOLD))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _gauss(seed: int, *keys: np.ndarray) -> np.ndarray:
    u1, u2 = _uniform(seed, *keys, 1), _uniform(seed, *keys, 2)
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


# -- daily shapes ----------------------------------------------------------------------------------------------------
def _bump(hour: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    d = (hour - mu + 12) % 24 - 12
    return np.exp(-d * d / (2 * sigma * sigma))


def _demand(hour: np.ndarray) -> np.ndarray:
    """Water demand over the day, ~1 on average: low at night, morning and evening peaks."""
    return (0.55 + 0.8 * _bump(hour, 7.5, 1.3) + 0.6 * _bump(hour, 19.5, 1.8) + 0.2 * _bump(hour, 12.5, 1.5)
            - 0.25 * _bump(hour, 3.5, 2.0))


def _shape(code: int, t: np.ndarray) -> np.ndarray:
    hour = ((t + LOCAL) % 86400) / 3600
    name = _SHAPES[code]
    if name == "demand":
        return _demand(hour)
    if name == "demand2":
        return _demand(hour) ** 2
    if name == "afternoon":
        return np.cos(2 * np.pi * (hour - 16) / 24)
    if name == "tide":
        return np.cos(2 * np.pi * t / _M2) + 0.3 * np.cos(2 * np.pi * t / _S2 + 1.0)
    if name.startswith("use:"):
        base, top, on, off = _USES[name[4:]]
        day = 1 / (1 + np.exp(-(hour - on) / 0.4)) / (1 + np.exp(-(off - hour) / 0.4))
        extra = (0.45 * _bump(hour, 20.0, 1.5) + 0.15 * _bump(hour, 7.5, 1.0)) if name == "use:residential" else 0
        return base + (top - base) * day + extra
    return np.zeros_like(t)


class Simulator:
    """Readings of every sensor at its own interval (with jitter) from `start` on, anomalies included."""

    def __init__(self, specs: SensorSpecs | Iterable[Mapping], seed: int, start: float,
                 episode_every: float = EPISODE_EVERY) -> None:
        self.specs = specs if isinstance(specs, SensorSpecs) else load_sensors(specs)
        self.seed, self.start, self.now, self.episode_every = int(seed), float(start), float(start), episode_every
        self._lock = threading.Lock()
        self._setup(np.random.default_rng([self.seed, 7]))

    def _setup(self, r: np.random.Generator) -> None:
        """Per-sensor model: value = level + amp * shape(t - lag) + trend * days + wander * w(t) + sigma * z."""
        s = self.specs
        n = len(s)
        u = r.random((n, 2))
        level, amp, trend, wander, sigma = (np.zeros(n) for _ in range(5))
        shape, lag, decimals = np.zeros(n, int), np.zeros(n), np.full(n, 3)
        known = np.zeros(n, bool)

        def put(kind: str, shp: str, lvl, a, wnd, sd, dec: int, tr=0.0) -> None:
            m = s.kind == kind
            known[m] = True
            for arr, val in ((level, lvl), (amp, a), (wander, wnd), (sigma, sd), (trend, tr)):
                arr[m] = np.broadcast_to(val, n)[m]
            shape[m], decimals[m] = _SHAPES.index(shp), dec

        flow = np.where(np.isfinite(s.h), s.h / 3.6, 100.0) * (0.8 + 0.4 * u[:, 0])
        peak = np.where(np.isfinite(s.h), s.h / 1.2, 100.0)
        band = np.where(np.isfinite(s.h - s.l), s.h - s.l, 2.5)
        put("manhole_cover", "flat", 0.2 + 0.3 * u[:, 0], 0, 0.1, 0.08, 2)
        put("pipe_pressure", "demand2", 0.41 + 0.03 * u[:, 0], -(0.045 + 0.01 * u[:, 1]), 0.004, 0.0015, 4)
        put("pipe_flow", "demand", 0, flow, 0.03 * flow, 0.005 * flow, 2)
        put("tunnel_gas", "afternoon", 0.6 + 0.8 * u[:, 0], 0.3, 0.25, 0.08, 2)
        put("tunnel_temperature", "afternoon", 24.5 + 2.5 * u[:, 0], 1.6, 0.3, 0.05, 2)
        put("tunnel_humidity", "afternoon", 68.5 + 3.0 * u[:, 0], -4.5, 1.5, 0.3, 1)
        put("settlement", "flat", 2.0 + 6.0 * u[:, 0], 0, 0.05, 0.04, 2, 0.05 + 0.25 * u[:, 1])
        put("water_level", "tide", np.where(np.isfinite(s.l), s.l, 1.0) + 0.4 * band, 0.18 * band, 0.01, 0.004, 3)
        put("building_energy", "flat", 0, peak, 0.04 * peak, 0.008 * peak, 1)
        m = s.kind == "water_level"
        lag[m] = 600 * u[m, 0]  # the tide reaches the gauges a few minutes apart
        m = s.kind == "building_energy"
        shape[m] = [_SHAPES.index(f"use:{x if x in _USES else 'office'}") for x in s.use[m]]
        # other kinds: a flat value inside the limits given
        mid = np.select([np.isfinite(s.h + s.l), np.isfinite(s.h), np.isfinite(s.l)],
                        [(s.h + s.l) / 2, s.h / 2, s.l + np.abs(s.l)], 0.0)
        other = ~known
        level[other] = mid[other]
        sigma[other] = 0.002 * np.maximum(np.abs(level[other]), 1)
        # noise alone never trips the rate-of-change rule, even between readings 20 % closer than the interval
        self._sigma = np.where(np.isfinite(s.roc), np.minimum(sigma, s.roc * s.interval_s / 720), sigma)
        self._level, self._amp, self._trend, self._wander = level, amp, trend, wander
        self._shape, self._lag, self._decimals = shape, lag, decimals
        self._nonneg = np.where(np.isin(s.kind, ["manhole_cover", "tunnel_gas", "pipe_flow", "building_energy"]),
                                0.0, -np.inf)
        self._floor = np.nanmax(np.column_stack([self._nonneg, s.l + s.deadband, s.ll + s.deadband]), 1)
        self._offset = r.random(n) * s.interval_s
        self._periods = r.uniform(900, 10800, (n, 3))
        self._phases = r.uniform(0, 2 * np.pi, (n, 3))
        high, low = np.isfinite(s.h) | np.isfinite(s.hh), np.isfinite(s.l) | np.isfinite(s.ll)
        self._eligible = {"exceed": np.flatnonzero(high | low), "spike": np.flatnonzero(np.isfinite(s.roc)),
                          "silent": np.arange(n)}
        t = s.interval_s
        self._longest = float(max(np.max(2 * np.maximum(300, 2 * t) + np.maximum(120, 4 * t)),
                                  np.max(1.5 * s.stale_s + 2 * t)))

    # -- the schedule --------------------------------------------------------------------------------------------
    def _times(self, i: np.ndarray, n: np.ndarray) -> np.ndarray:
        t = self.specs.interval_s[i]
        return self.start + self._offset[i] + n * t + JITTER * t * (2 * _uniform(self.seed, i, n, 0) - 1)

    def _schedule(self, a: float, b: float, every: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(sensor, reading number, time) of the readings due in (a, b]."""
        t, base = self.specs.interval_s, self.start + self._offset
        lo = np.ceil((a - base - JITTER * t) / t).astype(np.int64)
        count = np.maximum(np.floor((b - base + JITTER * t) / t).astype(np.int64) - lo + 1, 0)
        i = np.repeat(np.arange(len(t)), count)
        n = lo[i] + np.arange(len(i)) - np.repeat(np.cumsum(count) - count, count)
        if every is not None:
            keep = n % every[i] == 0
            i, n = i[keep], n[keep]
        times = self._times(i, n)
        due = (times > a) & (times <= b)
        return i[due], n[due], times[due]

    def _normal(self, i: np.ndarray, n: np.ndarray, t: np.ndarray) -> np.ndarray:
        shape = np.zeros(len(i))
        codes = self._shape[i]
        for code in np.unique(codes):
            m = codes == code
            shape[m] = _shape(int(code), t[m] - self._lag[i[m]])
        w = np.sin(2 * np.pi * t[:, None] / self._periods[i] + self._phases[i]).mean(1)
        v = (self._level[i] + self._amp[i] * shape + self._trend[i] * (t - self.start) / 86400
             + self._wander[i] * w + self._sigma[i] * _gauss(self.seed, i, n, 3))
        return np.maximum(v, self._nonneg[i])

    def episodes(self, a: float, b: float) -> list[Episode]:
        """The anomaly episodes active at some time in (a, b]."""
        p = self.episode_every
        last = math.floor((b - self.start + float(self.specs.interval_s.max())) / p)  # a spike may come early
        k = np.arange(math.floor((a - self.start - self._longest) / p) - 1, last + 1)
        u = [_uniform(self.seed, k, 10 + j) for j in range(5)]
        s = self.specs
        out = []
        for j, kk in enumerate(k):
            kind = _CYCLE[kk % len(_CYCLE)]
            pool = self._eligible[kind]
            if not len(pool):
                continue
            i = int(pool[int(u[0][j] * len(pool))])
            t0 = self.start + kk * p + u[1][j] * p / 2
            ti = float(s.interval_s[i])
            if kind == "silent":
                ep = Episode(kind, s.ids[i], i, float(t0), float(t0 + 1.5 * s.stale_s[i] + 2 * ti))
            elif kind == "spike":
                n = int(round((t0 - self.start - self._offset[i]) / ti))
                tn = float(self._times(np.array([i]), np.array([n]))[0])
                ep = Episode(kind, s.ids[i], i, tn - 0.5 * ti, tn + 0.5 * ti, reading=n)
            else:
                rule, limit, peak = self._excursion(i, u[2][j], u[3][j])
                roc = float(s.roc[i]) if np.isfinite(s.roc[i]) else np.inf
                ramp = float(np.clip(abs(peak - self._level[i]) / (0.5 * roc) * 60, 2 * ti, max(300.0, 2 * ti)))
                ep = Episode(kind, s.ids[i], i, float(t0), float(t0 + 2 * ramp + max(120.0, 4 * ti)), rule, limit,
                             peak)
            if ep.end > a and ep.start <= b:
                out.append(ep)
        return out

    def _excursion(self, i: int, u_side: float, u_level: float) -> tuple[str, float, float]:
        """Which limit an excursion crosses and the value it holds beyond it."""
        s = self.specs
        hh, h, lo, ll, db = (float(x[i]) for x in (s.hh, s.h, s.l, s.ll, s.deadband))
        high = np.isfinite(h) or np.isfinite(hh)
        if high and (np.isfinite(lo) or np.isfinite(ll)):
            high = u_side < 0.5
        inner, outer, sign = (h, hh, 1.0) if high else (lo, ll, -1.0)
        if np.isfinite(outer) and (u_level < 0.4 or not np.isfinite(inner)):
            gap = abs(outer - inner) if np.isfinite(inner) else 0.1 * max(abs(outer), 1.0)
            return ("HH" if high else "LL"), outer, outer + sign * max(0.25 * gap, 2 * db)
        if np.isfinite(outer):
            return ("H" if high else "L"), inner, inner + 0.5 * (outer - inner)
        return ("H" if high else "L"), inner, inner + sign * max(2 * db, 0.05 * max(abs(inner), 1.0))

    def _apply(self, ep: Episode, i: np.ndarray, n: np.ndarray, t: np.ndarray, v: np.ndarray,
               keep: np.ndarray) -> None:
        m = i == ep.index
        if not m.any():
            return
        if ep.kind == "silent":
            keep[m & (t >= ep.start) & (t < ep.end)] = False
        elif ep.kind == "spike":
            m &= n == ep.reading
            s = self.specs
            k = ep.index
            size = 1.6 * s.roc[k] * s.interval_s[k] / 60  # > roc even between readings 20 % further apart
            up = np.nanmin([s.h[k], s.hh[k], np.inf]) - s.deadband[k] - v[m]
            down = v[m] - self._floor[k]
            v[m] += np.where((up > 1.1 * size) | (down < 1.1 * size), size, -size)  # down if up would reach H
        else:
            ramp = (ep.end - ep.start - max(120.0, 4 * self.specs.interval_s[ep.index])) / 2
            w = np.clip(np.minimum(t[m] - ep.start, ep.end - t[m]) / ramp, 0.0, 1.0)
            held = ep.value + 0.5 * self._sigma[ep.index] * _gauss(self.seed, i[m], n[m], 5)
            v[m] = (1 - w) * v[m] + w * held

    def _emit(self, a: float, b: float, every: np.ndarray | None = None) -> list[Reading]:
        i, n, t = self._schedule(a, b, every)
        v = self._normal(i, n, t)
        keep = np.ones(len(i), bool)
        for ep in self.episodes(a, b):
            self._apply(ep, i, n, t, v, keep)
        i, t, v = i[keep], np.round(t[keep], 3), v[keep]
        for d in np.unique(self._decimals[i]):
            m = self._decimals[i] == d
            v[m] = np.round(v[m], int(d))
        order = np.lexsort((i, t))
        i, t, v = i[order], t[order], v[order]
        return list(zip(self.specs.ids[i].tolist(), t.tolist(), v.tolist(), strict=True))

    # -- public ---------------------------------------------------------------------------------------------------
    def readings(self, t: float) -> list[Reading]:
        """Every reading due after the previous call (or the start) up to simulated time t, in time order."""
        with self._lock:
            if t <= self.now:
                return []
            out = self._emit(self.now, t)
            self.now = t
            return out


def backfill(sim: Simulator, hours: float, step: float = 60.0) -> Iterator[Reading]:
    """The readings of the `hours` before the simulator's start, about one per `step` seconds per sensor."""
    every = np.maximum(1, np.round(step / sim.specs.interval_s)).astype(np.int64)
    a = sim.start - hours * 3600
    while a < sim.start:
        b = min(a + 3600.0, sim.start)
        yield from sim._emit(a, b, every)
        a = b


def backfill_into(ingest: Ingest, sim: Simulator, hours: float, batch: int = 20_000) -> int:
    """Write the `hours` of history before the simulator's start straight into the model; readings stored."""
    stored = 0
    readings = backfill(sim, hours)
    while chunk := list(itertools.islice(readings, batch)):
        stored += ingest.write(*(list(c) for c in zip(*chunk, strict=True)), actor="simulator").stored
    return stored


def run(send: Callable[[str, float, float], object], sim: Simulator, speed: float = 1.0,
        duration: float | None = None, stop_event: threading.Event | None = None,
        progress: Callable[[dict], object] | None = None, tick: float = 0.25) -> dict:
    """Send every reading as (simulated) time passes, speed times faster than the wall clock, for `duration` wall
    seconds or until stop_event is set; progress gets the counts about once a second. Returns the final counts."""
    stop_event = stop_event or threading.Event()
    wall0, sim0, sent, last = _time.monotonic(), sim.now, 0, 0.0
    while True:
        elapsed = _time.monotonic() - wall0
        done = stop_event.is_set() or (duration is not None and elapsed >= duration)
        if duration is not None:
            elapsed = min(elapsed, duration)
        batch = sim.readings(sim0 + elapsed * speed)
        for reading in batch:
            send(*reading)
        sent += len(batch)
        stats = {"readings": sent, "elapsed_s": round(elapsed, 3), "sim_time": sim.now,
                 "rate": sent / elapsed if elapsed > 0 else 0.0, "sensors": len(sim.specs)}
        if progress is not None and (done or elapsed - last >= 1.0):
            progress(stats)
            last = elapsed
        if done:
            return stats
        stop_event.wait(tick if duration is None else max(0.0, min(tick, duration - elapsed)))
