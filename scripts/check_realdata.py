"""Import the public real-data files of ../shared/realdata into models whose storage CRS suits them and
check that they land where they are in the world; tile them and check that CesiumJS shows the tiles there
too (and, when ../shared/schemas is beside it, that every tileset.json passes the 3D Tiles 1.1 schemas).
Run by CI when shared/ is present.

usage: python scripts/check_realdata.py REALDATA_DIR
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.tiler.js_tools: the node tools

from cim.config import settings  # noqa: E402
from cim.db.cluster import LocalCluster  # noqa: E402
from cim.db.server import drop_database, model_url  # noqa: E402
from cim.model.store import Model  # noqa: E402

# (model, storage CRS, imports, expected lon/lat box of every object). An import is [verb, file, *args],
# optionally followed by what must happen: {"fails": text in the one-line error} or {"lands": (lon, lat)} of
# the project origin as `cim import ifc` prints it.
CHECKS = [
    ("cim_real_delft", "EPSG:28992", [["cityjson", "citymodel/cjio__delft.json"]], (4.33, 51.98, 4.40, 52.03)),
    ("cim_real_brussels", "EPSG:31370",
     [["gis", "citymodel/raytracing__place_saint_jean_osm.geojson", "--layer", "buildings"]],
     (4.345, 50.840, 4.362, 50.850)),
    ("cim_real_ky4", "EPSG:32616",
     [["dem", "dem/wntr__ky4_elevation.tif", "--z-unit", "m"],  # metres (J-1: DEM 188 m, EPANET 611 ft = 186 m)
      ["pipes", "gis/wntr__ky4_pipes.geojson", "--network", "water",
       *(a for p in ("junctions", "tanks", "reservoirs", "pumps")
         for a in ("--points", f"gis/wntr__ky4_{p}.geojson"))],
      ["epanet", "epanet/wntr__ky4.inp", "--crs", "EPSG:3547", "--layer", "ky4_epanet"]],
     (-89.6, 36.5, -81.9, 39.2)),
    ("cim_real_karlsruhe", "EPSG:25832",
     [["ifc", "ifc/webifc__AC20-FZK-Haus.ifc", {"lands": (8.436539, 49.100435)}],  # its IfcSite RefLat/RefLon
      # the MapConversion origin (EPSG:31467 E 3458715.92 N 5439966.65), not 1,000 km away (Scale=1000, mm)
      ["ifc", "ifc/bsi4x3__geographic-referencing-gk.ifc", {"lands": (8.4336778, 49.0955387)}],
      ["ifc", "ifc/webifc__IfcOpenHouse_IFC4.ifc", {"fails": "not georeferenced; pass --anchor"}],
      ["ifc", "ifc/webifc__IfcOpenHouse_IFC4.ifc", "--anchor", "8.4370,49.1010,115", "--rotation", "30",
       {"lands": (8.4370, 49.1010)}],
      ["ifc", "ifc/ysc__Ifc2x3_Duplex_Electrical.ifc", {"fails": "outside the area of use"}]],
     (8.40, 49.07, 8.47, 49.12)),
    ("cim_real_chicago", "EPSG:26916",
     [["ifc", "ifc/ysc__Ifc2x3_Duplex_Electrical.ifc", {"lands": (-87.6393967, 41.8744011)}]],
     (-87.65, 41.86, -87.63, 41.89)),
    ("cim_real_bonsai", "EPSG:3857",
     [["ifc", "ifc/ifcopenshell_georef/geolocation-mapconversion.ifc", {"fails": "pass --crs"}],
      ["ifc", "ifc/ifcopenshell_georef/geolocation-mapconversion-angle.ifc", "--crs", "EPSG:3857",
       {"lands": (0.0001347, 0.0)}],  # E = 15000 mm in a mm project without MapUnit: 15 m
      ["ifc", "ifc/ifcopenshell_georef/geolocation-unit1.ifc", {"lands": (0.0000898, 0.0)}],  # E 10000 mm
      ["ifc", "ifc/ifcopenshell_georef/geolocation-unit2.ifc", {"lands": (0.0000898, 0.0)}],  # E 10 m
      ["ifc", "ifc/ifcopenshell_georef/geolocation-unit3.ifc", {"lands": (0.0000898, 0.0)}],  # E 10 m, cm
      ["ifc", "ifc/ifcopenshell_georef/geolocation.ifc", {"fails": "not georeferenced"}],
      ["ifc", "ifc/ifcopenshell_georef/auto-geolocation.ifc", {"fails": "not georeferenced"}]],
     (-0.01, -0.01, 0.01, 0.01)),
]
# Models whose tiles are loaded in CesiumJS (the root tileset's centre must fall in the expected box).
TILED = ("cim_real_delft", "cim_real_ky4", "cim_real_karlsruhe", "cim_real_brussels")
# Pipe networks checked against WNTR reading the EPANET file: (model, layer, .inp). Net3 and L-TOWN have
# local coordinates: they get their own model (CRS irrelevant, no area check).
NETWORKS = {
    "cim_real_ky4": [("water", "epanet/wntr__ky4.inp"), ("ky4_epanet", "epanet/wntr__ky4.inp")],
    "cim_real_local": [("net3", "epanet/wntr__Net3.inp"), ("ltown", "epanet/emt__L-TOWN.inp")],
}
CHECKS.append(("cim_real_local", "EPSG:3857",
               [["epanet", "epanet/wntr__Net3.inp", "--crs", "EPSG:3857", "--layer", "net3"],
                ["epanet", "epanet/emt__L-TOWN.inp", "--crs", "EPSG:3857", "--layer", "ltown"]],
               (-1.0, -1.0, 1.0, 1.0)))
LANDED = re.compile(r"landed at lon (\S+) lat (\S+)")


def outcome(done: subprocess.CompletedProcess, expect: dict) -> str | None:
    """None when the import did what it should, else what went wrong."""
    if "fails" in expect:
        ok = done.returncode != 0 and expect["fails"] in done.stderr and len(done.stderr.strip().splitlines()) == 1
        return None if ok else f"expected one line with {expect['fails']!r}, got rc {done.returncode}: {done.stderr}"
    if done.returncode != 0:
        return f"FAILED: {done.stderr.strip()}"
    if "lands" in expect:
        found = LANDED.search(done.stdout)
        if not found:
            return "no landing printed"
        got = (float(found.group(1)), float(found.group(2)))
        if max(abs(a - b) for a, b in zip(got, expect["lands"], strict=True)) > 1e-6:
            return f"landed at {got}, expected {expect['lands']}"
    return None


def check_network(model: Model, layer: str, inp: Path) -> int:
    """Topology equal to WNTR's reading of the .inp (every link joins the same two nodes), valve segments
    equal to WNTR's valve_segments for a strategic valve layer, and every pipe's isolation equal to its WNTR
    segment; 0 when all agree."""
    import pandas as pd
    import wntr

    from cim.analysis.isolation import isolate, valve_segments
    from cim.analysis.network import load_graph

    graph = load_graph(model, layer)
    wn = wntr.network.WaterNetworkModel(str(inp))
    ends = {name: {link.start_node_name, link.end_node_name} for name, link in wn.links()}
    ours = {graph.pipe_source[i]: {graph.node_source[graph.pipe_from[i]], graph.node_source[graph.pipe_to[i]]}
            for i in range(graph.p)}
    topology_ok = ours == ends and set(graph.node_source) == set(wn.node_name_list)
    problems = 0 if topology_ok else 1
    for n in (1, 2):
        vl = wntr.network.generate_valve_layer(wn, "strategic", n, seed=5)
        seg = valve_segments(graph, zip(vl["link"], vl["node"], strict=True))
        _, links, _ = wntr.metrics.topographic.valve_segments(wn.to_graph(), vl)
        mine = pd.Series(seg.pipe_seg, index=graph.pipe_source)
        both = pd.DataFrame({"cim": mine, "wntr": links.reindex(mine.index)})
        same = both.groupby("cim")["wntr"].nunique().eq(1).all() and both.groupby("wntr")["cim"].nunique().eq(1).all()
        members = both.groupby("wntr").groups
        iso_ok = all(set(graph.pipe_source[[graph.index[c][1] for c in isolate(seg, code).isolated_pipes]])
                     == set(members[both.at[src, "wntr"]])
                     for code, src in zip(graph.pipe_code, graph.pipe_source, strict=True))
        problems += not (same and iso_ok)
        print(f"{model.info.name}/{layer}: {graph.p} links, {graph.n} nodes, topology "
              f"{'= WNTR' if topology_ok else 'DIFFERS from WNTR'}; strategic N-{n} valves {len(vl)}: "
              f"{seg.count} segments {'= WNTR' if same else 'DIFFER from WNTR'}, isolation of every pipe "
              f"{'= its WNTR segment' if iso_ok else 'DIFFERS'}")
    return problems


def check_tiles(name: str, box: tuple[float, float, float, float], schemas: Path) -> int:
    """Tile a model, check the tilesets, load them in CesiumJS; the number of problems."""
    from cim.tiler.check import check_tileset
    from tests.tiler.js_tools import cesium_load

    out = settings().data_dir / "realdata-tiles" / name
    subprocess.run([sys.executable, "-m", "cim", "tile", "--out", str(out), "--full", "--model", name], check=True,
                   stdout=subprocess.DEVNULL)
    problems = check_tileset(out / "tileset.json")
    if schemas.is_dir():
        done = subprocess.run([sys.executable, str(Path(__file__).parent / "check_tileset_schema.py"), str(out),
                               str(schemas)], capture_output=True, text=True)
        problems += [] if done.returncode == 0 else [done.stdout.strip().splitlines()[-1]]
    loaded = cesium_load(out, "tileset.json", out / "cesium.png", all_tiles=True)
    lon, lat = loaded["cartographic"]["lon"], loaded["cartographic"]["lat"]
    w, s, e, n = box
    if not loaded["ok"]:
        problems.append(f"CesiumJS: {loaded.get('tileFailed') or loaded.get('pageErrors') or loaded.get('error')}")
    if not (w <= lon <= e and s <= lat <= n):
        problems.append(f"CesiumJS shows the tiles at lon {lon:.5f} lat {lat:.5f}, outside {box}")
    print(f"{name}: tiles {'ok' if not problems else '; '.join(problems[:3])}: {loaded.get('loadedByType')} "
          f"loaded at lon {lon:.5f} lat {lat:.5f}, screenshot {out / 'cesium.png'}")
    return len(problems)


def main(realdata: Path) -> int:
    if not settings().database_url:
        LocalCluster().up()
    failures = 0
    for name, crs, imports, (w, s, e, n) in CHECKS:
        url = model_url(name)
        drop_database(url)
        subprocess.run([sys.executable, "-m", "cim", "db", "init", "--crs", crs, "--model", name], check=True,
                       stdout=subprocess.DEVNULL)
        for verb, file, *args in imports:
            expect = args.pop() if args and isinstance(args[-1], dict) else {}
            args = [str(realdata / a) if a.endswith(".geojson") else a for a in args]
            done = subprocess.run([sys.executable, "-m", "cim", "import", verb, str(realdata / file), *args,
                                   "--model", name], capture_output=True, text=True)
            problem = outcome(done, expect)
            failures += problem is not None
            said = done.stderr.strip() if "fails" in expect else ""
            print(f"{name}: import {verb} {file} {' '.join(args)}: {problem or 'ok'} {said}".rstrip())
        with Model.open(name).connect() as conn:
            count, outside, bounds = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE NOT ST_Within(ST_Transform(ST_Envelope(geom), 4326), "
                "ST_MakeEnvelope(%s, %s, %s, %s, 4326))), ST_AsText(ST_Transform(ST_SetSRID(ST_Extent(geom), "
                "%s), 4326)) FROM city_object",
                (w, s, e, n, int(crs.split(":")[1])),
            ).fetchone()
        print(f"{name}: {count} objects, {outside} outside the expected area; extent {bounds}")
        failures += outside > 0 or count == 0
        failures += sum(check_network(Model.open(name), layer, realdata / inp) for layer, inp in NETWORKS.get(name, ()))
        if name in TILED:
            failures += check_tiles(name, (w, s, e, n), realdata.parent / "schemas" / "3d-tiles-1.1")
        drop_database(url)
    print(f"real data: {'all placed right' if not failures else f'{failures} problem(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
