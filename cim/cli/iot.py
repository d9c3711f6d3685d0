"""`cim import sensors` and `cim iot …`: the broker, the MQTT ingester, the simulator and one-off readings."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import typer

from cim.cli.main import ModelOpt, _done, _open, app, err, fail, guarded, import_app, out

iot_app = typer.Typer(no_args_is_help=True, help="Live IoT: the MQTT broker, ingest, simulator (docs/iot.md).")
broker_app = typer.Typer(no_args_is_help=True, help="The project's own Mosquitto (loopback, persistent sessions).")
iot_app.add_typer(broker_app, name="broker")
app.add_typer(iot_app, name="iot")


def _broker(fn):
    from cim.iot.broker import BrokerError

    try:
        return fn()
    except BrokerError as exc:
        fail(str(exc))


def _stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, so that the current batch finishes and is acknowledged."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@import_app.command("sensors")
def import_sensors_cmd(
    file: Path = typer.Argument(..., help="Sensors as GeoJSON points or CSV (docs/iot.md)."),
    layer: str = typer.Option("sensors", help="Model layer of the sensor objects."),
    crs: str | None = typer.Option(None, help="CRS of the locations (CSV default: the model's; GeoJSON: CRS84)."),
    model: str | None = ModelOpt,
) -> None:
    """Import the sensor registry: sensors, the objects they observe, their alarm rules."""
    from cim.iot.registry import import_sensors

    m = _open(model)
    started = time.perf_counter()
    result = guarded(lambda: import_sensors(m, file, layer, crs))
    _done(f"{file.name} → {layer}", result, started)


@broker_app.command("up")
def broker_up() -> None:
    """Start the project's Mosquitto (no-op when it runs or CIM_MQTT_URL names another broker)."""
    from cim.config import settings
    from cim.iot.broker import LocalBroker, address, reachable

    if settings().mqtt_url:
        addr = address()
        state = "answers" if reachable(addr) else "does NOT answer"
        out.print(f"CIM_MQTT_URL is set: using the broker at {addr.host}:{addr.port}, which {state}")
        return
    broker = LocalBroker()
    did = _broker(broker.up)
    out.print(f"mosquitto {did}: port {broker.port}, data dir {broker.dir}")


@broker_app.command("down")
def broker_down() -> None:
    """Stop the project's Mosquitto (it keeps the persistent sessions and queued messages)."""
    from cim.iot.broker import LocalBroker

    out.print(f"mosquitto {_broker(LocalBroker().down)}")


@broker_app.command("status")
def broker_status() -> None:
    """Whether the project's Mosquitto runs (exit 1 when not)."""
    from cim.iot.broker import LocalBroker

    text = LocalBroker().status()
    out.print(f"mosquitto: {text}")
    if not text.startswith("running"):
        raise typer.Exit(1)


@iot_app.command("ingest")
def ingest_cmd(model: str | None = ModelOpt) -> None:
    """Subscribe to the readings over MQTT and write them to the model until Ctrl-C (progress every 5 s)."""
    from cim.api.app import _check_schema
    from cim.iot.broker import ensure_broker
    from cim.iot.mqtt import Ingester

    m = _open(model)
    guarded(lambda: _check_schema(m))
    _broker(ensure_broker)
    ingester = Ingester(m, report=lambda text: err.print(f"ingest: {text}"))
    stop = _stop_on_signals()
    guarded(lambda: ingester.run(stop))
    out.print(f"ingest stopped: {ingester.summary()}")


@iot_app.command("send")
def send_cmd(
    sensor: str = typer.Argument(..., help="Sensor code or device id."),
    value: float = typer.Argument(..., help="The reading."),
    at: str | None = typer.Option(None, "--time", help="ISO 8601 time with offset (default: now)."),
    model: str | None = ModelOpt,
) -> None:
    """Publish one reading over MQTT, as a device would (to the broker the ingester listens to)."""
    import math
    import os

    from cim.iot.broker import address, reachable
    from cim.iot.ingest import parse_time
    from cim.iot.mqtt import Publisher
    from cim.iot.registry import Registry

    when = time.time() if at is None else parse_time(at)
    if when is None:
        fail(f"--time {at!r}: expected ISO 8601 with an offset, e.g. 2026-11-26T14:00:00+08:00")
    if not math.isfinite(value):
        fail(f"the value must be a finite number, not {value}")
    m = _open(model)
    with m.connect() as conn:
        registry = guarded(lambda: Registry.load(conn))
    if sensor not in registry.by_ref:
        fail(f"model {m.info.name!r} has no sensor {sensor!r} (a unified code or device id; see /iot/sensors)")
    addr = _broker(address)
    if not reachable(addr):
        fail(f"no MQTT broker answers at {addr.host}:{addr.port}: start the demo (make demo) or `cim iot broker up` "
             "and `cim iot ingest`")
    pub = _broker(lambda: Publisher(f"cim-send-{os.getpid()}", clean=True))
    pub.send(sensor, when, value)
    _broker(lambda: pub.close(10))
    out.print(f"sent {sensor} = {value:g} at {when:.3f}")


@iot_app.command("prune")
def prune_cmd(
    keep_days: float = typer.Option(..., "--keep-days", min=0, help="Keep this many days of history."),
    model: str | None = ModelOpt,
) -> None:
    """Drop the history older than --keep-days, a whole day's partition at a time (states and alarms stay)."""
    from cim.iot.history import prune

    m = _open(model)
    with m.connect() as conn:
        dropped = guarded(lambda: prune(conn, keep_days))
    out.print(f"dropped {len(dropped)} day(s) of history" + (f": {', '.join(dropped)}" if dropped else ""))


@iot_app.command("status")
def status_cmd(model: str | None = ModelOpt) -> None:
    """Sensors by status, open alarms and history of a model."""
    m = _open(model)

    def query():
        with m.connect() as conn:
            states = conn.execute("SELECT s.status, count(*) FROM sensor_state s JOIN city_object o ON o.code = s.code "
                                  "GROUP BY 1 ORDER BY 1").fetchall()
            alarms = conn.execute("SELECT rule, state, count(*) FROM alarm WHERE state <> 'cleared' "
                                  "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
            history = conn.execute("SELECT count(*), min(time), max(time) FROM observation").fetchone()
        return states, alarms, history

    states, alarms, (n, first, last) = guarded(query)
    out.print("sensors: " + (", ".join(f"{k} {v}" for k, v in states) or "none"))
    out.print("open alarms: " + (", ".join(f"{r} {s} {n}" for r, s, n in alarms) or "none"))
    span = f" from {first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S}" if n else ""
    out.print(f"history: {n:,} readings{span}")



def _specs(conn) -> list[dict]:
    """The simulator's view of the model's sensors: device id, kind, interval, limits, building use."""
    from cim.iot.registry import RULE_FIELDS

    rows = conn.execute("SELECT source_id, attributes FROM city_object WHERE kind = 'sensor' ORDER BY code")
    return [{"id": device, "kind": a.get("sensor_kind"), "interval_s": a.get("interval_s"), "use": a.get("use"),
             **{k: a.get("rules", {}).get(k) for k in RULE_FIELDS}} for device, a in rows]


@iot_app.command("simulate")
def simulate_cmd(
    seed: int = typer.Option(1, help="Seed of the readings and anomalies."),
    speed: float = typer.Option(1.0, help="Simulated seconds per wall-clock second."),
    duration: float | None = typer.Option(None, help="Stop after this many wall-clock seconds (default: Ctrl-C)."),
    backfill_hours: float = typer.Option(0.0, "--backfill-hours",
                                         help="First write the history of the last hours the model lacks "
                                              "(straight to the database, coarser steps)."),
    anomalies: bool = typer.Option(True, "--anomalies/--no-anomalies", help="Inject alarm episodes."),
    model: str | None = ModelOpt,
) -> None:
    """Realistic readings for the model's sensors over MQTT, as the devices would send them (docs/iot.md)."""
    from cim.config import settings
    from cim.iot.broker import ensure_broker
    from cim.iot.ingest import Ingest
    from cim.iot.mqtt import Publisher
    from cim.iot.simulate import Simulator, backfill_into, run

    if speed > 1 and duration is None:
        fail("--speed above 1 needs --duration: the readings must not run ahead of the clock, and ingest refuses "
             "those more than CIM_IOT_MAX_FUTURE_S ahead")
    m = _open(model)

    def read() -> tuple[list[dict], float | None]:
        with m.connect() as conn:
            return _specs(conn), conn.execute("SELECT extract(epoch FROM max(time))::float8 FROM observation"
                                              ).fetchone()[0]

    specs, last = guarded(read)
    if not specs:
        fail(f"model {m.info.name!r} has no sensors: import some with `cim import sensors FILE`")
    _broker(ensure_broker)
    pub = _broker(lambda: Publisher(f"cim-simulator-{m.info.name}"))
    # faster than real time, simulated time starts in the past so that it reaches now as the run ends
    start = time.time() - (speed - 1) * duration if speed > 1 else time.time()
    sim = Simulator(specs, seed, start, episode_every=120.0 if anomalies else 1e12)
    hours = min(backfill_hours, (start - last) / 3600) if last else backfill_hours
    if hours > 0:
        with m.connect(autocommit=True) as conn:
            stored = guarded(lambda: backfill_into(Ingest(conn, settings()), sim, hours))
        out.print(f"simulate: backfilled {hours:.1f} h of history, {stored:,} readings")
    stop = _stop_on_signals()
    out.print(f"simulate: {len(specs)} sensors at {speed:g}x over MQTT"
              f"{', anomalies every 120 s' if anomalies else ''} (Ctrl-C stops)")
    last_report = [0.0]

    def progress(stats: dict) -> None:
        if stats["elapsed_s"] - last_report[0] >= 10:
            last_report[0] = stats["elapsed_s"]
            err.print(f"simulate: {stats['readings']:,} readings sent, {stats['rate']:,.1f}/s")

    stats = run(pub.send, sim, speed=speed, duration=duration, stop_event=stop, progress=progress)
    _broker(lambda: pub.close(30))
    out.print(f"simulate: {stats['readings']:,} readings sent in {stats['elapsed_s']:.0f} s")
