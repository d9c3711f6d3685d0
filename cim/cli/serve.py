"""`cim serve`: the analyst API (OGC API - Features, 3D queries, analyses, tiles); `cim api-key`: a new key."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import typer

from cim.cli.main import ModelOpt, _open, app, fail, guarded, out
from cim.config import settings


@app.command("serve")
def serve_cmd(
    host: str = typer.Option(None, help="Address to listen on (default CIM_API_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default CIM_API_PORT, 8000)."),
    workers: int = typer.Option(1, help="Worker processes."),
    live: bool = typer.Option(False, "--live", help="Also run the MQTT broker, the ingester and the simulator "
                                                    "(what the demo does); their logs go to the data dir."),
    model: str | None = ModelOpt,
) -> None:
    """Serve the model over HTTP: OGC API - Features, 3D queries, pipe analyses and the 3D Tiles."""
    import uvicorn

    from cim.api.app import _check_schema

    cfg = settings()
    m = _open(model)
    guarded(lambda: _check_schema(m))
    os.environ["CIM_MODEL"] = m.info.name  # the app (and every worker) opens this model
    settings.cache_clear()  # this process read the settings before; the app must see CIM_MODEL
    host, port = host or cfg.api_host, port or cfg.api_port
    keys = f"{len(cfg.api_keys)} API key(s) for writes" if cfg.api_keys else "no API key: writes are disabled"
    out.print(f"serving model {m.info.name!r} at http://{host}:{port}/ (tiles from {cfg.tiles_dir}; reads "
              f"{'public' if cfg.api_public_read else 'need a key'}; {keys})")
    out.print(f"viewer: http://{host}:{port}/viewer/ (open it in a browser)")
    # uvicorn ends by raising the SIGTERM it caught again, with the handler it found: make that an exit that
    # stops the children below, not a kill that leaves them running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.ExitStack() as stack:
        if live:
            _live_children(stack, m.info.name, cfg.data_dir / "logs")
        try:
            uvicorn.run("cim.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                        log_level="warning", access_log=False, proxy_headers=True)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc}")


def _live_children(stack: contextlib.ExitStack, model: str, logs: Path) -> None:
    """The broker (started when it is the project's own), `cim iot ingest` and `cim iot simulate` beside the API,
    stopped (and their logs closed) when the stack unwinds."""
    from cim.cli.iot import _broker
    from cim.iot.broker import ensure_broker

    _broker(ensure_broker)
    logs.mkdir(parents=True, exist_ok=True)
    for name, args in (("ingest", ["iot", "ingest"]), ("simulate", ["iot", "simulate", "--backfill-hours", "6"])):
        log = stack.enter_context((logs / f"{name}.log").open("a"))
        child = subprocess.Popen([sys.executable, "-m", "cim", *args, "--model", model], stdout=log,
                                 stderr=subprocess.STDOUT)
        stack.callback(_stop, child)
        out.print(f"live: `cim {' '.join(args)}` runs beside the API (log {log.name})")


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM (a child finishes its batch), then SIGKILL after 30 s."""
    child.terminate()
    try:
        child.wait(30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


@app.command("api-key")
def api_key_cmd() -> None:
    """Make a new API key: give the key to the client, put its digest in CIM_API_KEYS."""
    from cim.api.security import new_key

    key, digest = new_key()
    out.print(f"key:    {key}\ndigest: {digest}\n"
              f"Give the key to the client (X-API-Key header); start the server with CIM_API_KEYS={digest} "
              "(comma-separate several).")
