"""The sensor simulator on the sample's sensors: determinism, realistic values, anomalies, run and backfill."""

from __future__ import annotations

import threading
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from cim.iot.simulate import SensorSpecs, Simulator, backfill, load_sensors, run
from cim.sample.sensors import write_sensors

START = 1_764_115_200.0  # 2025-11-26 00:00 UTC
LOCAL = 8 * 3600


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> SensorSpecs:
    return load_sensors(write_sensors(tmp_path_factory.mktemp("sensors") / "sensors.geojson"))


@pytest.fixture(scope="module")
def day(specs) -> tuple[Simulator, pd.DataFrame]:
    """One simulated day of readings, asked for hour by hour."""
    sim = Simulator(specs, 5, START)
    frames = [pd.DataFrame(sim.readings(START + h * 3600), columns=["id", "t", "v"]) for h in range(1, 25)]
    df = pd.concat(frames, ignore_index=True)
    info = pd.DataFrame({"kind": specs.kind, "T": specs.interval_s, "h": specs.h, "hh": specs.hh, "l": specs.l,
                         "ll": specs.ll, "db": specs.deadband, "roc": specs.roc, "stale": specs.stale_s,
                         "use": specs.use}, index=specs.ids)
    return sim, df.join(info, on="id")


def _by_sensor(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {k: g.sort_values("t") for k, g in df.groupby("id")}


def _alone(sim: Simulator, kind: str, a: float, b: float) -> list:
    """Episodes of one kind inside (a, b) that no other episode of the same sensor overlaps."""
    eps = sim.episodes(START - 7200, START + 86400 + 7200)
    return [e for e in eps if e.kind == kind and a < e.start and e.end < b and not any(
        o is not e and o.sensor == e.sensor and o.start < e.end + 300 and e.start - 300 < o.end for o in eps)]


def _undisturbed(sim: Simulator, df: pd.DataFrame) -> pd.DataFrame:
    """Readings (with the rate from the previous one) away from every anomaly episode of their sensor."""
    df = df.sort_values(["id", "t"]).copy()
    same = df["id"].eq(df["id"].shift())
    df["rate"] = np.where(same, (df["v"].diff().abs() / df["t"].diff() * 60), np.nan)
    bad = pd.Series(False, index=df.index)
    rows = df.groupby("id").indices
    t = df["t"].to_numpy()
    for ep in sim.episodes(START, START + 86400):
        idx = df.index[rows[ep.sensor]]
        margin = 2 * float(df.loc[idx[0], "T"])
        pos = rows[ep.sensor]
        bad.loc[idx[(t[pos] >= ep.start - margin) & (t[pos] <= ep.end + margin)]] = True
    return df[~bad]


def test_deterministic_for_a_seed_and_independent_of_call_pattern(specs) -> None:
    end = START + 1800
    once = Simulator(specs, 11, START).readings(end)
    again = Simulator(specs, 11, START).readings(end)
    assert once == again and len(once) > 1000
    sim = Simulator(specs, 11, START)
    pieces, t = [], START
    for step in np.random.default_rng(0).uniform(0.05, 7.0, 100000):
        t = min(t + step, end)
        pieces += sim.readings(t)
        if t == end:
            break
    assert pieces == once
    other = Simulator(specs, 12, START).readings(end)
    assert [r[2] for r in other[:200]] != [r[2] for r in once[:200]]
    times = [r[1] for r in once]
    assert times == sorted(times) and START < times[0] and times[-1] <= end


def test_about_one_reading_per_interval(day) -> None:
    sim, df = day
    silent = {ep.sensor for ep in sim.episodes(START, START + 86400) if ep.kind == "silent"}
    counts = df.groupby("id").size()
    expected = 86400 / df.groupby("id")["T"].first()
    steady = ~counts.index.isin(list(silent))
    assert steady.sum() > 150
    assert (np.abs(counts[steady] - expected[steady]) <= 1).all()
    assert len(counts) == len(sim.specs)
    gaps = df.sort_values(["id", "t"]).groupby("id")["t"].diff() / df.sort_values(["id", "t"])["T"]
    assert 0.75 <= gaps.min() and gaps.median() == pytest.approx(1.0, abs=0.02)


def test_normal_operation_stays_clear_of_every_rule(day) -> None:
    sim, df = day
    ok = _undisturbed(sim, df)
    assert len(ok) > 0.5 * len(df)
    for limit, side in (("hh", 1), ("h", 1), ("l", -1), ("ll", -1)):
        inner = ok[limit] - side * ok["db"]
        has = ok[limit].notna()
        assert ((side * (ok["v"] - inner))[has] < 0).all(), limit
    has = ok["roc"].notna() & ok["rate"].notna()
    assert (ok.loc[has, "rate"] <= ok.loc[has, "roc"]).all()


def test_realistic_values_per_kind(day) -> None:
    sim, df = day
    ok = _undisturbed(sim, df)
    v = {k: g["v"] for k, g in ok.groupby("kind")}
    assert v["pipe_pressure"].between(0.3, 0.45).all()
    assert v["tunnel_gas"].between(0.0, 3.0).all()
    assert v["tunnel_temperature"].between(22.0, 30.0).all()
    assert v["tunnel_humidity"].between(60.0, 80.0).all()
    assert v["manhole_cover"].between(0.0, 1.0).all() and v["manhole_cover"].median() < 0.6
    assert (v["pipe_flow"] > 0).all() and (v["building_energy"] >= 0).all()

    def mean(kind: str, lo: float, hi: float, frame: pd.DataFrame = ok) -> float:
        h = ((frame["t"] + LOCAL) % 86400) / 3600
        return frame.loc[(frame["kind"] == kind) & (h >= lo) & (h < hi), "v"].mean()

    # demand: flow peaks in the morning, when the pressure dips; nights are quiet
    assert mean("pipe_flow", 7, 8.5) > 2 * mean("pipe_flow", 2, 4)
    assert mean("pipe_pressure", 7, 8.5) < mean("pipe_pressure", 2, 4) - 0.04
    assert mean("tunnel_temperature", 14, 17) > mean("tunnel_temperature", 3, 6) + 1.5
    assert mean("tunnel_humidity", 14, 17) < mean("tunnel_humidity", 3, 6) - 3
    for use, frame in ok[ok["kind"] == "building_energy"].groupby("use"):
        busy = (19, 21) if use == "residential" else (10, 16)
        assert mean("building_energy", *busy, frame) > 1.3 * mean("building_energy", 2, 5, frame), use
    level = ok[ok["kind"] == "water_level"].groupby("id")
    assert ((level["v"].max() - level["v"].min()) > 0.3 * (level["h"].first() - level["l"].first())).all()
    for _, g in ok[ok["kind"] == "settlement"].groupby("id"):
        assert g["v"].between(0, 20).all() and np.polyfit(g["t"], g["v"], 1)[0] > 0  # slowly growing


def test_excursions_cross_the_limit_and_come_back_past_the_deadband(day) -> None:
    sim, df = day
    sensors = _by_sensor(df)
    eps = _alone(sim, "exceed", START, START + 86400 - 600)
    assert len(eps) > 100 and {e.rule for e in eps} == {"H", "HH", "L", "LL"}
    for ep in eps:
        g = sensors[ep.sensor]
        t, v = g["t"].to_numpy(), g["v"].to_numpy()
        db = float(g["db"].iloc[0])
        side = 1 if ep.rule.startswith("H") else -1
        during = (t >= ep.start) & (t <= ep.end)
        assert (side * (v[during] - ep.limit) > 0).sum() >= 3, ep  # held past the limit for a while
        after = t > ep.end
        back = np.flatnonzero(after)[0]
        assert side * (v[back] - (ep.limit - side * db)) < 0, ep  # back inside, past the deadband
        assert side * (v[np.flatnonzero(t < ep.start)[-1]] - (ep.limit - side * db)) < 0, ep


def test_spikes_trip_the_rate_of_change(day) -> None:
    sim, df = day
    sensors = _by_sensor(df)
    eps = _alone(sim, "spike", START + 600, START + 86000)
    assert len(eps) > 50
    for ep in eps:
        g = sensors[ep.sensor]
        t, v = g["t"].to_numpy(), g["v"].to_numpy()
        k = np.flatnonzero((t >= ep.start) & (t <= ep.end))
        assert len(k) == 1
        k = k[0]
        roc = float(g["roc"].iloc[0])
        assert abs(v[k] - v[k - 1]) / (t[k] - t[k - 1]) * 60 > roc, ep
        assert abs(v[k + 1] - v[k]) / (t[k + 1] - t[k]) * 60 > roc, ep


def test_silent_sensors_go_stale_and_come_back(day) -> None:
    sim, df = day
    sensors = _by_sensor(df)
    eps = _alone(sim, "silent", START + 600, START + 86400 - 3600)
    assert len(eps) > 50
    for ep in eps:
        g = sensors[ep.sensor]
        t = g["t"].to_numpy()
        stale = float(g["stale"].iloc[0])
        assert not ((t >= ep.start) & (t < ep.end)).any()
        before, after = t[t < ep.start][-1], t[t >= ep.end][0]
        assert after - before > stale
        assert after - ep.end <= 1.2 * float(g["T"].iloc[0])


def test_backfill_covers_the_hours_before_the_start(specs) -> None:
    sim = Simulator(specs, 5, START)
    coarse = list(backfill(sim, 2, step=60))
    rows = pd.DataFrame(coarse, columns=["id", "t", "v"])
    assert rows["t"].between(START - 7200, START).all()
    every = specs.interval_s * np.maximum(1, np.round(60 / specs.interval_s))
    silent = {e.sensor for e in sim.episodes(START - 7200, START) if e.kind == "silent"}
    per = rows.groupby("id").size()
    steady = per.index[~per.index.isin(list(silent))]
    assert len(per) == len(specs)
    assert (np.abs(per[steady] - 7200 / pd.Series(every, index=specs.ids)[steady]) <= 1).all()
    assert set(coarse) <= set(backfill(sim, 2, step=1))  # a thinned-out copy of the full history
    assert sim.now == START and sim.readings(START + 60)  # backfill does not move the simulator


def test_run_sends_in_real_time_and_stops(specs) -> None:
    sim = Simulator(specs, 9, START)
    got: list[tuple] = []
    reports: list[dict] = []
    stats = run(lambda s, t, v: got.append((s, t, v)), sim, speed=300.0, duration=1.5, progress=reports.append)
    simulated = sim.now - START
    assert 300 <= simulated <= 1.5 * 300 + 1e-6
    expected = (simulated / specs.interval_s).sum()
    assert 0.9 * expected <= len(got) <= 1.1 * expected + 50
    assert stats["readings"] == len(got) and reports and reports[-1]["readings"] == len(got)
    assert [r[1] for r in got] == sorted(r[1] for r in got)
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    counts = defaultdict(int)
    run(lambda s, t, v: counts.__setitem__(s, counts[s] + 1), sim, speed=10.0, stop_event=stop)
    assert stop.is_set() and sum(counts.values()) > 0


def test_load_sensors_from_records() -> None:
    specs = load_sensors([{"id": "X-1", "kind": "pipe_pressure", "h": 0.55, "l": 0.2, "roc": 0.1},
                          {"id": "X-2", "kind": "something_else", "h": 10, "interval_s": 5}])
    assert list(specs.ids) == ["X-1", "X-2"] and specs.interval_s[0] == 60 and specs.stale_s[1] == 15
    quiet = Simulator(specs, 1, START, episode_every=1e9)  # no anomaly in sight
    values = [r[2] for r in quiet.readings(START + 600) if r[0] == "X-2"]
    assert len(values) >= 100 and all(0 < v < 10 for v in values)
