"""The project's own Mosquitto under the data dir (loopback, persistent sessions kept across restarts), or the
broker CIM_MQTT_URL names."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cim.config import Settings, settings


class BrokerError(RuntimeError):
    """The broker cannot be found, configured or started; the message says why."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    username: str | None = None
    password: str | None = None


def address(cfg: Settings | None = None) -> Address:
    """Where the broker listens: CIM_MQTT_URL, else the project's own on loopback."""
    cfg = cfg or settings()
    if not cfg.mqtt_url:
        return Address("127.0.0.1", cfg.mqtt_port)
    url = urlsplit(cfg.mqtt_url)
    if url.scheme not in ("mqtt", "tcp") or not url.hostname:
        raise BrokerError(f"CIM_MQTT_URL {cfg.mqtt_url!r}: expected mqtt://host:port")
    return Address(url.hostname, url.port or 1883, url.username, url.password)


def reachable(addr: Address, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout):
            return True
    except OSError:
        return False


# Persistent sessions must survive an ingester that is down for a while: the default queue of 1,000
# messages per offline client would drop readings, and 20 messages in flight would throttle a subscriber
# that acknowledges per committed batch.
CONFIG = """# written by cim (cim/iot/broker.py); edit CIM_MQTT_PORT rather than this file
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {dir}/
autosave_interval 5
max_inflight_messages 10000
max_queued_messages 2000000
max_queued_bytes 0
log_dest file {dir}/mosquitto.log
log_type error
log_type warning
log_type notice
pid_file {dir}/mosquitto.pid
"""


class LocalBroker:
    """Start, stop and inspect the project's own Mosquitto."""

    def __init__(self, cfg: Settings | None = None) -> None:
        cfg = cfg or settings()
        self.dir = (cfg.data_dir / "mosquitto").resolve()
        self.port = cfg.mqtt_port
        self.addr = Address("127.0.0.1", self.port)

    @property
    def conf(self) -> Path:
        return self.dir / "mosquitto.conf"

    @property
    def log(self) -> Path:
        return self.dir / "mosquitto.log"

    def _binary(self) -> str:
        found = shutil.which("mosquitto") or next(
            (str(p) for p in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto")) if p.exists()), None)
        if not found:
            raise BrokerError("mosquitto not found: install it (Debian: apt-get install mosquitto; macOS: brew "
                              "install mosquitto) or point CIM_MQTT_URL at a broker")
        return found

    def pid(self) -> int | None:
        try:
            pid = int((self.dir / "mosquitto.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def status(self) -> str:
        pid = self.pid()
        if pid and reachable(self.addr):
            return f"running, pid {pid}, port {self.port} (data dir {self.dir})"
        return f"stopped (data dir {self.dir})"

    def up(self, timeout: float = 15.0) -> str:
        if self.pid() and reachable(self.addr):
            return "already running"
        if reachable(self.addr):
            raise BrokerError(f"port {self.port} is in use by another server; set CIM_MQTT_PORT to a free port")
        binary = self._binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(CONFIG.format(port=self.port, dir=self.dir))
        if os.geteuid() == 0:  # mosquitto started as root drops to its own user, which must own its files
            for path in (self.dir, *self.dir.iterdir()):
                shutil.chown(path, "mosquitto", "mosquitto")
        proc = subprocess.run([binary, "-c", str(self.conf), "-d"], capture_output=True, text=True)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise BrokerError(f"mosquitto failed: {detail[-1] if detail else proc.returncode}; see {self.log}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reachable(self.addr, 0.2) and self.pid():
                return "started"
            time.sleep(0.1)
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout:g} s; see {self.log}")

    def down(self, timeout: float = 15.0) -> str:
        """Stop it gracefully (it saves the persistent sessions and queued messages)."""
        pid = self.pid()
        if pid is None:
            return "not running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return "stopped"
            time.sleep(0.05)
        raise BrokerError(f"mosquitto (pid {pid}) did not stop within {timeout:g} s")


def ensure_broker(cfg: Settings | None = None) -> Address:
    """The broker to use, started when it is the project's own and not running."""
    cfg = cfg or settings()
    addr = address(cfg)
    if not cfg.mqtt_url:
        LocalBroker(cfg).up()
    elif not reachable(addr):
        raise BrokerError(f"no MQTT broker answers at {addr.host}:{addr.port} (CIM_MQTT_URL)")
    return addr
