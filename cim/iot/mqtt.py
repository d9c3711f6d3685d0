"""MQTT: the topic scheme and payloads, a publisher, and the ingester (`cim iot ingest`), which acknowledges
each message to the broker only after its batch is committed, so a crash loses nothing (docs/iot.md)."""

from __future__ import annotations

import logging
import threading
import time as clock
from collections import Counter, deque
from collections.abc import Callable

import orjson
import paho.mqtt.client as mqtt
import psycopg

from cim.config import Settings, settings
from cim.iot.broker import Address, BrokerError, address
from cim.iot.ingest import Ingest, Outcome, iso, reading
from cim.model.store import Model, ModelError

log = logging.getLogger("cim.iot")


def topic(sensor: str, cfg: Settings | None = None) -> str:
    return f"{(cfg or settings()).mqtt_topic_prefix}/sensors/{sensor}/observations"


def subscription(cfg: Settings | None = None) -> str:
    return topic("+", cfg)


def payload(time: float, value: float) -> bytes:
    return orjson.dumps({"time": iso(time), "value": value})


def parse_message(topic_name: str, data: bytes) -> tuple[str, list[tuple[float | None, object]]] | str:
    """(sensor reference, [(epoch seconds, value)]) of one message, or why it is malformed."""
    parts = topic_name.split("/")
    if len(parts) < 3 or parts[-1] != "observations" or parts[-3] != "sensors" or not parts[-2]:
        return "bad topic"
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "payload not JSON"
    items = body if isinstance(body, list) else [body]
    readings = []
    for item in items:
        if not isinstance(item, dict):
            return "payload not an object"
        readings.append(reading(item))
    return parts[-2], readings


def _client(client_id: str, clean: bool, addr: Address, **kwargs) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                         protocol=mqtt.MQTTv311, **kwargs)
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    client.reconnect_delay_set(0.1, 2)
    return client


def end_session(client_id: str, cfg: Settings | None = None) -> None:
    """Discard a persistent session and what the broker queued for it (a model that is gone, a test's)."""
    addr = address(cfg or settings())
    client = _client(client_id, True, addr)
    client.connect(addr.host, addr.port, keepalive=10)
    client.loop_start()
    client.disconnect()
    client.loop_stop()


class Publisher:
    """QoS 1 publishing of readings; what the broker has not acknowledged is resent after a reconnect."""

    def __init__(self, client_id: str, cfg: Settings | None = None, clean: bool = False, timeout: float = 10) -> None:
        self.cfg = cfg or settings()
        addr = address(self.cfg)
        self.client = _client(client_id, clean, addr)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.sent = self.acked = 0  # acknowledgements are counted, not tracked per message: paho leaves a
        self._acks = threading.Condition()  # message sent during an outage marked failed after its resend
        answered = threading.Event()
        refused: list[str] = []

        def on_connect(client, userdata, flags, reason, properties) -> None:
            if reason.is_failure:
                refused.append(str(reason))
            answered.set()

        self.client.on_connect = on_connect
        self.client.on_publish = self._on_publish
        self.client.connect_async(addr.host, addr.port, keepalive=30)
        self.client.loop_start()
        if not answered.wait(timeout) or refused:
            self.client.loop_stop()
            why = f"refused the connection: {refused[0]}" if refused else f"did not answer within {timeout:g} s"
            raise BrokerError(f"the MQTT broker at {addr.host}:{addr.port} {why}")

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        with self._acks:
            self.acked += 1
            self._acks.notify_all()

    def send(self, sensor: str, time: float, value: float) -> None:
        self.send_raw(topic(sensor, self.cfg), payload(time, value))

    def send_raw(self, topic_name: str, data: bytes) -> None:
        with self._acks:
            self.sent += 1
        self.client.publish(topic_name, data, qos=1)

    def flush(self, timeout: float = 60) -> None:
        """Wait until the broker has acknowledged everything sent."""
        with self._acks:
            if not self._acks.wait_for(lambda: self.acked >= self.sent, timeout):
                raise BrokerError(f"the broker did not acknowledge {self.sent - self.acked} messages within "
                                  f"{timeout:g} s")

    def close(self, timeout: float = 60) -> None:
        try:
            self.flush(timeout)
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def _close(ingest: Ingest | None) -> None:
    """Close an ingest's connection, whatever state it is in; returns None to forget it."""
    if ingest is not None:
        ingest.conn.close()


class Ingester:
    """Subscribes with a persistent QoS 1 session, writes batches through Ingest, acknowledges after commit."""

    def __init__(self, model: Model, cfg: Settings | None = None, client_id: str | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.cfg = cfg or settings()
        self.addr = address(self.cfg)
        self.client_id = client_id or f"cim-ingest-{model.info.name}"
        self.report = report or log.info
        self.queue: deque = deque()
        self.wake = threading.Event()
        self.generation = 0  # of the connection: a message is acknowledged on the connection that brought it
        self.connected = threading.Event()
        self.received = self.stored = self.duplicates = self.alarm_events = 0
        self.rejected: Counter = Counter()  # readings, by reason
        self.malformed: Counter = Counter()  # messages, by reason
        self.logged: set[str] = set()  # what was reported once (unknown sensors, malformed topics)

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self.report(f"broker refused the connection: {reason}")
            return
        self.generation += 1
        client.subscribe(subscription(self.cfg), qos=1)
        self.connected.set()
        session = "resumed" if flags.session_present else "new"
        self.report(f"connected to {self.addr.host}:{self.addr.port} (session {session}), "
                    f"subscribed to {subscription(self.cfg)}")

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self.connected.clear()
        self.report(f"disconnected from the broker ({reason}); reconnecting")

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        self.queue.append((self.generation, msg.mid, msg.qos, msg.topic, msg.payload))
        if len(self.queue) >= self.cfg.iot_max_batch:
            self.wake.set()

    def _batch(self) -> list:
        n = min(len(self.queue), self.cfg.iot_max_batch)
        return [self.queue.popleft() for _ in range(n)]

    def _parse(self, items: list) -> tuple[list, list, list]:
        refs, times, values = [], [], []
        for _, _, _, topic_name, data in items:
            parsed = parse_message(topic_name, data)
            if isinstance(parsed, str):
                self.malformed[parsed] += 1
                self._once(f"{parsed}: {topic_name} {data[:80]!r}")
                continue
            ref, readings = parsed
            for t, v in readings:
                refs.append(ref)
                times.append(t)
                values.append(v)
        return refs, times, values

    def run(self, stop: threading.Event, wait_s: float = 5.0) -> None:
        """Ingest until `stop` is set, as the model's only ingester (two would take turns on one session)."""
        with self.model.connect(autocommit=True) as guard:
            deadline = clock.monotonic() + wait_s  # a killed predecessor's lock goes with its connection
            while not guard.execute("SELECT pg_try_advisory_lock(hashtext('cim-iot-ingest'))").fetchone()[0]:
                if clock.monotonic() > deadline:
                    raise ModelError(f"another `cim iot ingest` is running for model {self.model.info.name!r}")
                stop.wait(0.2)
            self._run(stop)

    def _run(self, stop: threading.Event) -> None:
        """Nothing is acknowledged before it is committed: while the database is unreachable or refuses a
        batch, the batch is retried (every few seconds, reported) and the broker keeps the rest."""
        client = _client(self.client_id, False, self.addr, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(self.addr.host, self.addr.port, keepalive=30)
        client.loop_start()
        ingest: Ingest | None = None
        pending: list = []
        last_report = last_sweep = clock.monotonic()
        reported = failures = 0
        try:
            while not stop.is_set() or (pending and ingest is not None):
                if not pending:
                    self.wake.wait(self.cfg.iot_batch_ms / 1000)
                    self.wake.clear()
                    pending = self._batch()
                try:
                    if ingest is None:
                        ingest = Ingest(self.model.connect(autocommit=True), self.cfg)
                    if pending:
                        self._count(ingest.write(*self._parse(pending), actor="mqtt"))
                        self.received += len(pending)
                except psycopg.Error as exc:
                    failures += 1
                    what = "database unavailable" if isinstance(exc, psycopg.OperationalError) else \
                        f"the database refused a batch of {len(pending)} messages"
                    self.report(f"{what} ({' '.join(str(exc).split())[:200]}); retrying (attempt {failures})")
                    ingest = _close(ingest)
                    stop.wait(min(1.0 * failures, 10.0))
                    continue
                failures = 0
                for gen, mid, qos, _, _ in pending:
                    if qos and gen == self.generation:
                        client.ack(mid, qos)
                pending = []
                now = clock.monotonic()
                # silence is only judged once the broker's backlog is drained
                if now - last_sweep >= self.cfg.iot_stale_check_s and not self.queue:
                    last_sweep = now
                    try:
                        self.alarm_events += len(ingest.sweep_stale())
                    except psycopg.Error as exc:
                        self.report(f"stale check failed ({' '.join(str(exc).split())[:200]})")
                        ingest = _close(ingest)
                if now - last_report >= 5:
                    rate = (self.received - reported) / (now - last_report)
                    self.report(self.summary(rate))
                    last_report, reported = now, self.received
        finally:
            client.disconnect()
            client.loop_stop()
            _close(ingest)

    def _count(self, outcome: Outcome) -> None:
        """Add a batch to the running counts (no per-reading or per-alarm data is kept)."""
        self.stored += outcome.stored
        self.duplicates += outcome.duplicates
        self.alarm_events += len(outcome.alarms)
        self.rejected.update(outcome.rejected)
        for ref in outcome.unknown:
            self._once(f"unknown sensor {ref!r} (import it with `cim import sensors`)")

    def _once(self, text: str) -> None:
        """Report a problem the first time it is seen (up to 100 distinct ones; the counts go on)."""
        if text not in self.logged and len(self.logged) < 100:
            self.logged.add(text)
            self.report(text)

    def summary(self, rate: float | None = None) -> str:
        rejected = self.rejected + self.malformed
        text = (f"{self.received:,} messages, {self.stored:,} readings stored, {self.duplicates:,} "
                f"duplicates, {self.alarm_events:,} alarm events")
        if rejected:
            text += ", rejected: " + ", ".join(f"{n:,} {why}" for why, n in rejected.most_common())
        return text + (f" ({rate:,.0f} messages/s)" if rate is not None else "")
