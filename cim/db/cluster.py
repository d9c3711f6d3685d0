"""A project-local PostgreSQL+PostGIS cluster under a data dir, run as `postgres` when we are root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cim.config import Settings, settings


class ClusterError(RuntimeError):
    """The local cluster cannot be set up or started; the message says why."""


def find_bindir(configured: Path | None = None) -> Path:
    """Directory of initdb/pg_ctl: configured, Debian's newest /usr/lib/postgresql/N/bin, or PATH."""
    if configured:
        return configured
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ClusterError(
        "PostgreSQL server binaries not found: install PostgreSQL 13+ with PostGIS 3 "
        "(Debian: apt-get install postgresql postgresql-postgis) or set CIM_PG_BINDIR"
    )


@dataclass
class ClusterStatus:
    initialized: bool
    running: bool
    accepting: bool
    pid: int | None
    port: int
    data_dir: Path

    def describe(self) -> str:
        if not self.initialized:
            return f"not initialised (data dir {self.data_dir})"
        if not self.running:
            return f"stopped (data dir {self.data_dir})"
        state = "accepting connections" if self.accepting else "NOT accepting connections"
        return f"running, pid {self.pid}, port {self.port}, {state} (data dir {self.data_dir})"


class LocalCluster:
    """Start, stop and inspect the project's own PostgreSQL cluster."""

    def __init__(self, cfg: Settings | None = None) -> None:
        cfg = cfg or settings()
        self.data_dir = (cfg.data_dir / "pgdata").resolve()
        self.log_file = (cfg.data_dir / "postgres.log").resolve()
        self.port = cfg.pg_port
        self._configured_bindir = cfg.pg_bindir

    @property
    def bindir(self) -> Path:
        return find_bindir(self._configured_bindir)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    # -- helpers -----------------------------------------------------------------------------
    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._as_owner(args), capture_output=True, text=True)
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise ClusterError(f"{Path(args[0]).name} failed: {detail[-1] if detail else proc.returncode}")
        return proc

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
            self.log_file.touch(exist_ok=True)
            shutil.chown(self.log_file, "postgres", "postgres")
            probe = self._run(["test", "-w", str(self.data_dir)], check=False)
            if probe.returncode != 0:
                raise ClusterError(
                    f"{self.data_dir}: the postgres user cannot reach this directory "
                    "(a parent is not world-executable); set CIM_DATA_DIR to a directory it can reach"
                )
        self.data_dir.chmod(0o700)

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def _pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _port_taken(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _accepting(self) -> bool:
        if not self._port_taken():
            return False
        proc = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            capture_output=True,
        )
        return proc.returncode == 0

    # -- commands ----------------------------------------------------------------------------
    def status(self) -> ClusterStatus:
        if not self.initialized:
            return ClusterStatus(False, False, False, None, self.port, self.data_dir)
        proc = self._run([str(self.bindir / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False)
        running = proc.returncode == 0
        return ClusterStatus(
            True, running, running and self._accepting(), self._pid() if running else None,
            self.port, self.data_dir,
        )

    def init(self) -> bool:
        """Create the cluster if missing; True when it was created now."""
        if self.initialized:
            return False
        self._prepare_dirs()
        self._run([
            str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions",
        ])
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# cim: loopback only, no unix socket (paths may be too long), tuned for bulk imports\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "max_connections = 100\n"
                "shared_buffers = '256MB'\n"
                "maintenance_work_mem = '256MB'\n"
                "max_wal_size = '2GB'\n"
                "fsync = on\n"
                "synchronous_commit = off\n"
            )
        return True

    def up(self, timeout: float = 60.0) -> str:
        """Start the cluster; a no-op when it already runs. Returns what it did."""
        created = self.init()
        st = self.status()
        if st.running:
            if not st.accepting:
                self._wait_accepting(timeout)
            return "already running"
        if self._port_taken():
            raise ClusterError(f"port {self.port} is in use by another server; set CIM_PG_PORT to a free port")
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            pidfile.unlink()  # pg_ctl status said no server owns it: a stale leftover of a crash
        self._prepare_dirs()
        self._run([
            str(self.bindir / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_file),
            "-w", "-t", str(int(timeout)), "-o", f"-p {self.port}",
        ])
        self._wait_accepting(timeout)
        return "initialised and started" if created else "started"

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._accepting():
                return
            time.sleep(0.2)
        raise ClusterError(f"server did not accept connections on port {self.port}; see {self.log_file}")

    def down(self) -> str:
        st = self.status()
        if not st.running:
            return "not running"
        self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"])
        return "stopped"
