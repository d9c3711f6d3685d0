"""The tiler tests' JS tools (scripts/js/) from Python: gltf-validator over glbs, CesiumJS in headless Chromium.

Both run under node from the repository root, whose node_modules `make setup` fills (npm ci of
package-lock.json); Chromium is Debian's /usr/bin/chromium (scripts/sysdeps.sh), or CIM_CHROMIUM.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "js"
NODE_MODULES = REPO / "node_modules"


class JsToolsMissing(RuntimeError):
    """node or the npm packages are not installed."""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise JsToolsMissing("node is not installed: run `make setup` (scripts/sysdeps.sh installs nodejs)")
    for pkg in ("gltf-validator", "cesium", "playwright-core"):
        if not (NODE_MODULES / pkg / "package.json").is_file():
            raise JsToolsMissing(f"{NODE_MODULES / pkg} is missing: run `make setup` (npm ci) in {REPO}")
    return node


def _run(script: str, args: list[str], timeout: float) -> dict:
    cmd = [_node(), str(SCRIPTS / script), *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    # 0: all good, 1: the check failed (the JSON says why); anything else is a usage or tool error.
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{script} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise RuntimeError(f"{script} printed no JSON ({err}): {proc.stdout[:500]!r} {proc.stderr[:2000]!r}") from err


def validate_glbs(paths: Iterable[Path | str], timeout: float = 600) -> dict:
    """Validate glb files (directories are searched recursively for *.glb) with the Khronos glTF-Validator.

    Returns {"files", "errors", "warnings", "infos", "validatorVersion", "results": [{"file", "numErrors",
    "numWarnings", "numInfos", "truncated", "messages": [{"code", "message", "pointer", "severity"}]}]}.
    A glb that refers to an external resource counts an IO_ERROR: ours must be self-contained.
    """
    args = [str(Path(p).resolve()) for p in paths]
    if not args:
        raise ValueError("validate_glbs: no paths")
    return _run("validate_glb.mjs", args, timeout)


def cesium_load(
    root: Path,
    tileset: str,
    screenshot: Path,
    all_tiles: bool = False,
    timeout: float = 120,
    globe: bool = False,
) -> dict:
    """Load root/tileset in CesiumJS (headless Chromium), wait for every tile in view, save a screenshot.

    `tileset` is relative to `root` (which is served as /tiles/). `all_tiles` lowers the maximum screen space
    error to 0.5 so every tile in view down to the leaves loads, external tilesets included. Returns
    {"ok", "tilesLoaded", "loadedByType", "tileFailed", "pageErrors", "consoleErrors", "failedRequests",
    "externalRequests", "boundingSphere": {"center": [x, y, z], "radius"}, "cartographic": {"lon", "lat",
    "height"}, "statistics", "timedOut", "error", "screenshot", "seconds"}.
    """
    args = [
        "--root", str(Path(root).resolve()),
        "--tileset", str(tileset),
        "--screenshot", str(Path(screenshot).resolve()),
        "--timeout", str(timeout),
    ]  # fmt: skip
    if all_tiles:
        args.append("--all-tiles")
    if globe:
        args.append("--globe")
    return _run("cesium_load.mjs", args, timeout + 90)
