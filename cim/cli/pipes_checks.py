"""`cim pipes clearance | excavation | profile`: checks across networks, on the `cim pipes` app."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import typer

from cim.analysis.results import json_safe
from cim.cli.main import ModelOpt, _open, err, fail, out
from cim.cli.pipes import JsonOpt, _print, _run, pipes_app

LayersOpt = typer.Option(None, "--layer", "-l", help="Only pipes of this model layer (repeatable; default all).")
ROWS = 20  # rows printed before "… and N more"


def _more(total: int) -> None:
    if total > ROWS:
        out.print(f"  … and {total - ROWS} more (--json for all)")


def _m(value: float) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.2f}"


@pipes_app.command("clearance")
def clearance_cmd(
    layer: list[str] = LayersOpt,
    table: Path | None = typer.Option(None, "--table", help="Clearance table TOML (default: GB 50289-2016 "
                                      "working values shipped with cim)."),
    buildings: bool = typer.Option(False, "--buildings", help="Also check pipes against building footprints."),
    as_json: bool = JsonOpt, model: str | None = ModelOpt,
) -> None:
    """Clearances between pipes of different networks (and to buildings) below the table's values."""
    from cim.analysis.clearance import check_buildings, check_clearances, load_table

    rules = _run(lambda: load_table(table))
    m = _open(model)
    layers = layer or None
    found = _run(lambda: check_clearances(m, layers, rules))
    near = _run(lambda: check_buildings(m, layers, rules)) if buildings else []
    everything = list(found) + list(near)
    unclassified = dict(found.unclassified)
    if as_json:
        _print(json_safe({"table": str(rules.path), "pipes": found.pipes, "pairs_measured": found.pairs,
                       "unclassified": unclassified,
                       "violations": [dataclasses.asdict(v) for v in everything]}), True)
        return
    kinds = {k: sum(v.kind == k for v in everything) for k in ("horizontal", "vertical", "building")}
    shown = ", ".join(f"{n} {k}" for k, n in kinds.items() if n or k != "building" or buildings)
    out.print(f"pipes: {found.pipes}  pairs measured: {found.pairs}  violations: {len(everything)} ({shown})  "
              f"on unverified values: {sum(v.unverified for v in everything)}")
    out.print(f"  table: {rules.path.name}" + ("  (working defaults, NOT for design use)" if table is None else ""))
    if unclassified:
        err.print("warning: no class of the table fits " + ", ".join(f"{n} {k}" for k, n in unclassified.items())
                  + " pipe(s); they were not checked")
    if found.pipes and layers and found.pairs == 0 and not near:
        err.print("warning: no pair of pipes of different networks in these layers is near enough to measure")
    for v in everything[:ROWS]:
        other = f"{v.code_b} ({v.source_b}, {v.class_b})" if v.kind != "building" else \
            f"building {v.code_b} ({v.source_b})"
        flag = "  [unverified value]" if v.unverified else ""
        out.print(f"  {v.kind:<10} {v.code_a} ({v.source_a}, {v.class_a}) – {other}: {v.actual_m:.2f} m < "
                  f"{v.required_m:.2f} m at ({v.x:.1f}, {v.y:.1f}){flag}")
    _more(len(everything))


def _pit(value: str):
    """A polygon from WKT, a GeoJSON text or a GeoJSON file (coordinates in the storage CRS)."""
    import shapely
    from shapely.errors import GEOSException

    text = value.strip()
    path = Path(text)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a WKT text longer than a file name may be
        is_file = False
    if is_file:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--polygon: {path}: cannot read: {exc}")
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text)
            if isinstance(data, dict) and data.get("type") == "FeatureCollection":
                feats = data.get("features") or []
                if len(feats) != 1:
                    fail(f"--polygon: the GeoJSON has {len(feats)} features; give exactly one pit outline")
                data = feats[0]
            if isinstance(data, dict) and data.get("type") == "Feature":
                data = data.get("geometry") or {}
            return shapely.from_geojson(json.dumps(data))
        return shapely.from_wkt(text)
    except (ValueError, GEOSException) as exc:
        what = f"{path}: not GeoJSON" if is_file else f"{value!r} is neither WKT nor an existing GeoJSON file"
        fail(f"--polygon: {what} ({exc})")


@pipes_app.command("excavation")
def excavation_cmd(
    polygon: str = typer.Option(..., "--polygon", help="Pit outline: WKT, or a GeoJSON file, in the storage CRS."),
    depth: float = typer.Option(..., "--depth", help="Pit depth below ground, metres."),
    margin: float = typer.Option(1.0, "--margin", help="Safety margin beside and under the pit, metres."),
    layer: list[str] = LayersOpt, as_json: bool = JsonOpt, model: str | None = ModelOpt,
) -> None:
    """Pipes an excavation hits, and those within the margin of it."""
    from cim.analysis.excavation import check_pit, excavation_impact

    pit = _pit(polygon)
    _run(lambda: check_pit(pit, depth, margin))
    m = _open(model)
    result = _run(lambda: excavation_impact(m, pit, depth, margin, layer or None))
    if as_json:
        _print(json_safe({"summary": result.summary(), **dataclasses.asdict(result)}), True)
        return
    _print(result, False)
    rows = [*result.hit, *result.too_close]
    for p in rows[:ROWS]:
        where = "above" if p.vertical_gap_m < 0 else "below"
        out.print(f"  {p.impact:<9} {p.code} ({p.source_id}) {p.network} {p.size}: {_m(p.horizontal_m)} m from the "
                  f"edge, crown {_m(abs(p.vertical_gap_m))} m {where} the bottom, {_m(p.length_inside_m)} m inside")
    _more(len(rows))


def _cut(value: str):
    import shapely

    try:
        nums = [float(v) for v in value.split(",")]
    except ValueError:
        fail(f"--line must be X1,Y1,X2,Y2[,…] in metres of the storage CRS, not {value!r}")
    if len(nums) < 4 or len(nums) % 2:
        fail(f"--line needs an even number of coordinates, two points or more: {value!r}")
    return shapely.LineString(list(zip(nums[::2], nums[1::2], strict=True)))


@pipes_app.command("profile")
def profile_cmd(
    line: str = typer.Option(..., "--line", help="Cut line X1,Y1,X2,Y2[,…] in the storage CRS."),
    step: float = typer.Option(5.0, "--step", help="Ground sampling step along the cut, metres."),
    layer: list[str] = LayersOpt, as_json: bool = JsonOpt, model: str | None = ModelOpt,
) -> None:
    """Cross-section along a cut line: pipes crossed (chainage, heights, cover) and the ground."""
    from cim.analysis.profile import check_cut, cross_section

    cut = _cut(line)
    _run(lambda: check_cut(cut, step))
    m = _open(model)
    result = _run(lambda: cross_section(m, cut, layer or None, step))
    if as_json:
        _print(json_safe({"summary": result.summary(), **dataclasses.asdict(result)}), True)
        return
    _print(result, False)
    for p in result.pipes[:ROWS]:
        out.print(f"  {p.chainage_m:8.2f} m  {p.network:<9} {p.code} ({p.source_id}) {p.shape} {p.size}: "
                  f"crown {_m(p.crown_z)}, centre {_m(p.centre_z)}, invert {_m(p.invert_z)}, cover {_m(p.cover_m)} m")
    _more(len(result.pipes))
