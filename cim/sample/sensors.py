"""Seeded sample sensor registry (docs/iot.md): ~300 IoT devices on the sample's pipes, tunnel, river and buildings.

Written as RFC 7946 GeoJSON (CRS84 lon/lat, Z the device's orthometric height). Every sensor observes objects of
the imported sample by `layer:source_key`: drainage manholes and water nodes (`N:<WTDH>`), water pipes
(`P:<GXBH>`), tunnel sections (`tunnels:UT-01`), the river (`river:district.gpkg#1`) and buildings (bldg_code).
Alarm limits are set per kind so that normal operation stays clear of them (the simulator's anomalies cross them).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from cim.sample import district
from cim.sample.district import CRS, DEFAULT_SEED
from cim.sample.tunnel import HEIGHT, SLAB, WALL, WIDTH, Tunnel, tunnel

# kind → (id prefix, interval_s, stale_s, fixed rules); limits that depend on the object are set where it is bound
KINDS: dict[str, tuple[str, float, float, dict]] = {
    "manhole_cover": ("MC", 30, 180, {"h": 5.0, "hh": 10.0, "deadband": 1.0, "roc": 2.0}),
    "pipe_pressure": ("PP", 10, 60, {"ll": 0.15, "l": 0.2, "h": 0.55, "hh": 0.6, "deadband": 0.01, "roc": 0.1}),
    "pipe_flow": ("PF", 10, 60, {}),
    "tunnel_gas": ("TG", 10, 60, {"h": 10.0, "hh": 20.0, "deadband": 1.0, "roc": 5.0}),  # GB 50838: alarm <= 20 %LEL
    "tunnel_temperature": ("TT", 30, 180, {"h": 35.0, "hh": 40.0, "deadband": 0.5, "roc": 1.0}),
    "tunnel_humidity": ("TH", 30, 180, {"h": 90.0, "hh": 95.0, "deadband": 2.0, "roc": 5.0}),
    "settlement": ("ST", 120, 600, {"h": 20.0, "hh": 30.0, "deadband": 0.5, "roc": 2.0}),
    "water_level": ("WL", 60, 300, {"deadband": 0.05, "roc": 0.05}),
    "building_energy": ("BE", 60, 300, {}),
}
RIVER_REF = "river:district.gpkg#1"  # the river layer has no id field: its feature id is the key
_INTENSITY = {"residential": 12, "commercial": 60, "office": 50, "industrial": 45, "public": 35, "school": 25,
              "hospital": 55}  # peak electric load, W per m2 of floor area
_ENERGY_MIX = {"residential": 20, "commercial": 12, "office": 12, "industrial": 8, "public": 5, "school": 2,
               "hospital": 1}


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, 40, stream])


def _frame(kind: str, refs: list, xyz: np.ndarray, names: list, **cols: object) -> pd.DataFrame:
    """Sensor rows of one kind, numbered in order, with the kind's interval, staleness and fixed rules."""
    prefix, interval, stale, rules = KINDS[kind]
    n = len(refs)
    return pd.DataFrame({"id": [f"{prefix}-{i + 1:04d}" for i in range(n)], "name": names, "kind": kind,
                         "objects": [r if isinstance(r, list) else [r] for r in refs],
                         "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], **rules, **cols,
                         "stale_s": float(stale), "interval_s": float(interval)})


def _spread(xy: np.ndarray, n: int, r: np.random.Generator) -> np.ndarray:
    """n indices of xy spread over the district (not on its edge, where the networks are cut off): one random pick
    per cell of a coarse grid, then random ones."""
    local = xy - district.ORIGIN
    grid = int(np.ceil(np.sqrt(n)))
    cell = np.clip(np.floor(local / (district.SIZE / grid)).astype(int), 0, grid - 1)
    inner = ((local > 5.0) & (local < district.SIZE - 5.0)).all(1)
    order = r.permutation(np.flatnonzero(inner))
    _, first = np.unique(cell[order, 0] * 1000 + cell[order, 1], return_index=True)
    picked = order[first]
    rest = np.setdiff1d(order, picked)
    picked = np.concatenate([r.permutation(picked), r.permutation(rest)])[:n]
    return np.sort(picked)


def _manholes(pipes: dict, seed: int) -> pd.DataFrame:
    pt = pipes["drainage_points"]
    pt = pt[pt["FSW"] == "检查井"]  # manholes (the importer's node_type "manhole"); not inlets or outlets
    xy = shapely.get_coordinates(pt.geometry.values)
    i = _spread(xy, 80, _rng(seed, 1))
    net = np.where(pt["GXDM"].to_numpy()[i] == "YS", "rain", "sewer")
    wtdh = pt["WTDH"].to_numpy()[i]
    xyz = np.column_stack([xy[i], pt["DMGC"].to_numpy()[i]])  # on the cover
    return _frame("manhole_cover", [f"drainage:N:{w}" for w in wtdh], xyz,
                  [f"Manhole cover, {k} {w}" for k, w in zip(net, wtdh, strict=True)])


def _water_axis(pipes: dict) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Water lines with the pipe axis height at both ends."""
    ln, pt = pipes["water_lines"], pipes["water_points"]
    ground = pd.Series(pt["DMGC"].to_numpy(), index=pt["WTDH"])
    r = ln["GJ"].astype(float) / 2000
    return ln, ground[ln["QDDH"]].to_numpy() - ln["QDMS"] - r, ground[ln["ZDDH"]].to_numpy() - ln["ZDMS"] - r


def _pressure(pipes: dict, seed: int) -> pd.DataFrame:
    ln, z0, z1 = _water_axis(pipes)
    pt = pipes["water_points"]
    tees = pt[pt["TZ"].isin(["三通", "四通"]) & pt["FSW"].isna()]  # junctions of the mains, not services
    ends = pd.DataFrame({"node": np.concatenate([ln["QDDH"], ln["ZDDH"]]), "z": np.concatenate([z0, z1]),
                         "gj": np.concatenate([ln["GJ"], ln["GJ"]])})
    z = ends.sort_values("gj", kind="stable").drop_duplicates("node", keep="last").set_index("node")["z"]
    xy = shapely.get_coordinates(tees.geometry.values)
    i = _spread(xy, 60, _rng(seed, 2))
    wtdh = tees["WTDH"].to_numpy()[i]
    return _frame("pipe_pressure", [f"water:N:{w}" for w in wtdh], np.column_stack([xy[i], z[wtdh].to_numpy()]),
                  [f"Pressure, water node {w}" for w in wtdh])


def _flow(pipes: dict, seed: int) -> pd.DataFrame:
    ln, z0, z1 = _water_axis(pipes)
    mains = np.flatnonzero((ln["GJ"] >= 300).to_numpy())
    mid = shapely.get_coordinates(shapely.line_interpolate_point(ln.geometry.values[mains], 0.5, normalized=True))
    k = mains[_spread(mid, 40, _rng(seed, 3))]
    xy = shapely.get_coordinates(shapely.line_interpolate_point(ln.geometry.values[k], 0.5, normalized=True))
    gj = ln["GJ"].to_numpy(float)[k]
    area = np.pi / 4 * (gj / 1000) ** 2 * 3600  # m3/h per m/s
    gxbh, road = ln["GXBH"].to_numpy()[k], ln["SZDL"].to_numpy()[k]
    return _frame("pipe_flow", [f"water:P:{g}" for g in gxbh],
                  np.column_stack([xy, (z0.to_numpy()[k] + z1.to_numpy()[k]) / 2]),
                  [f"Flow, water main {g} DN{int(d)} ({rd})" for g, d, rd in zip(gxbh, gj, road, strict=True)],
                  # warning at 1.5 m/s, critical at 2 m/s; a burst may raise the flow by a tenth of h a minute
                  h=np.round(1.5 * area, 1), hh=np.round(2.0 * area, 1), deadband=np.round(0.03 * area, 2),
                  roc=np.round(0.15 * area, 2))


def _tunnel_sensors(t: Tunnel) -> pd.DataFrame:
    """A monitoring station every ~65 m: methane (gas compartment, under the roof), air temperature and humidity
    (utility compartment, 1.8 m above the floor) and settlement (on the floor)."""
    s = (np.arange(12) + 0.5) * t.length / 12
    ref = [f"tunnels:{t.ids[k]}" for k in t.section_of(s)]
    roof = t.roof_at(s)
    floor = roof - HEIGHT + SLAB
    gas_lat = WIDTH / 2 - WALL - 0.5  # middle of the outer (gas) compartment
    util_lat = -WIDTH / 2 + WALL + 0.3  # near the inner wall of the utility compartment
    station = [f"{t.road} tunnel, {int(round(x))} m" for x in s]
    parts = []
    for kind, lat, z, what in (("tunnel_gas", gas_lat, roof - SLAB - 0.2, "Methane"),
                               ("tunnel_temperature", util_lat, floor + 1.8, "Air temperature"),
                               ("tunnel_humidity", util_lat, floor + 1.8, "Humidity"),
                               ("settlement", 0.0, floor, "Settlement")):
        xy = t.xy(s, lat)
        parts.append(_frame(kind, ref, np.column_stack([xy, z]), [f"{what}, {st}" for st in station]))
    return pd.concat(parts, ignore_index=True)


def _building_settlement(t: Tunnel, buildings: gpd.GeoDataFrame, first: int, seed: int) -> pd.DataFrame:
    """Settlement points on the six buildings next to the tunnel, spread along it."""
    s = (np.arange(6) + 0.5) * t.length / 6
    pts = shapely.points(t.xy(s))
    geoms = buildings.geometry.values
    near = shapely.STRtree(geoms).query_nearest(pts, all_matches=False)[1]
    near = pd.unique(near)
    corner = shapely.get_coordinates(shapely.get_point(shapely.get_exterior_ring(geoms[near]), 0))
    codes = buildings["bldg_code"].to_numpy()[near]
    rows = _frame("settlement", [f"buildings:{c}" for c in codes],
                  np.column_stack([corner, district.ground_height(corner[:, 0], corner[:, 1], seed) + 0.5]),
                  [f"Settlement, building {c} by the {t.road} tunnel" for c in codes])
    rows["id"] = [f"ST-{first + i:04d}" for i in range(len(rows))]
    return rows


def _river(layers: dict, seed: int) -> pd.DataFrame:
    """Radar level gauges on six of the N-S road bridges; levels in the model's heights (m)."""
    roads = layers["roads"]
    c = shapely.get_coordinates(roads.geometry.values).reshape(-1, 2, 2)
    ns = np.isclose(c[:, 0, 0], c[:, 1, 0])
    xs, first = np.unique(c[ns, 0, 0], return_index=True)
    pick = np.round(np.linspace(0, len(xs) - 1, 6)).astype(int)
    xs, road = xs[pick], roads["name"].to_numpy()[ns][first[pick]]
    v, _ = district._river_centre(xs - district.ORIGIN[0], seed)
    y = v + district.ORIGIN[1]
    hw = district._terrain(seed)["half_width"]
    bed = district.ground_height(xs, y, seed)
    banks = district.ground_height(np.repeat(xs, 2), np.repeat(y, 2) + np.tile([-1.6, 1.6], len(xs)) * hw,
                                   seed).reshape(-1, 2)
    low = np.round(bed + 0.4, 2)  # low water: the intake and the outlets run dry below it
    h = np.round(np.maximum(banks.min(1) - 1.0, low + 1.5), 2)  # flood warning a metre below the lower bank
    hh = np.round(np.maximum(banks.min(1) - 0.4, h + 0.5), 2)
    return _frame("water_level", [RIVER_REF] * len(xs), np.column_stack([xs, y, banks.max(1) + 1.0]),
                  [f"Water level, Qianshan He at the {n} bridge" for n in road], l=low, h=h, hh=hh)


def _energy(buildings: gpd.GeoDataFrame, seed: int) -> pd.DataFrame:
    """Electricity meters on 60 buildings of every use; limits from the peak load of the floor area."""
    r = _rng(seed, 6)
    b = buildings.reset_index(drop=True)
    area = b.geometry.area.to_numpy()
    floors = b["floors"].astype(float).to_numpy()
    floors = np.where(np.isnan(floors), np.round(b["height"].fillna(10.0).to_numpy() / 3.3), floors).clip(1)
    ok = area >= 200
    pick = []
    for use, n in _ENERGY_MIX.items():
        cand = np.flatnonzero(ok & (b["use"] == use).to_numpy())
        pick.append(r.choice(cand, min(n, len(cand)), replace=False))
    pick = np.sort(np.concatenate(pick))
    use = b["use"].to_numpy()[pick]
    peak = area[pick] * floors[pick] * np.array([_INTENSITY[u] for u in use]) / 1000
    inside = shapely.get_coordinates(shapely.point_on_surface(b.geometry.values[pick]))
    z = district.ground_height(inside[:, 0], inside[:, 1], seed) + 1.0  # meter room on the ground floor
    codes = b["bldg_code"].to_numpy()[pick]
    return _frame("building_energy", [f"buildings:{c}" for c in codes], np.column_stack([inside, z]),
                  [f"Electricity, {u} building {c}" for u, c in zip(use, codes, strict=True)],
                  h=np.round(1.2 * peak, 1), hh=np.round(1.45 * peak, 1), deadband=np.round(0.03 * peak, 2),
                  roc=np.round(0.12 * peak, 2), use=use)


def sample_sensors(seed: int = DEFAULT_SEED, layers: dict | None = None, pipes: dict | None = None) -> pd.DataFrame:
    """All sample sensors: one row each with the docs/iot.md fields and x, y, z in EPSG:4547."""
    from cim.sample.pipes import pipe_layers

    layers = layers or district.district_layers(seed)
    pipes = pipes or pipe_layers(seed)
    t = tunnel(seed, layers, pipes)
    tun = _tunnel_sensors(t)
    n_settle = int((tun["kind"] == "settlement").sum())
    parts = [_manholes(pipes, seed), _pressure(pipes, seed), _flow(pipes, seed), tun,
             _building_settlement(t, layers["buildings"], n_settle + 1, seed), _river(layers, seed),
             _energy(layers["buildings"], seed)]
    return pd.concat(parts, ignore_index=True)


def _clean(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if np.isnan(value) else round(value, 4)
    return value


def write_sensors(path: Path, seed: int = DEFAULT_SEED, layers: dict | None = None, pipes: dict | None = None
                  ) -> Path:
    """Write the sample sensors as RFC 7946 GeoJSON (CRS84, Z orthometric; layers, pipes: as built, if they are)."""
    rows = sample_sensors(seed, layers, pipes)
    lon, lat = Transformer.from_crs(CRS, "OGC:CRS84", always_xy=True).transform(rows["x"].to_numpy(),
                                                                               rows["y"].to_numpy())
    props = rows.drop(columns=["x", "y", "z"])
    features = []
    for rec, x, y, z in zip(props.to_dict("records"), lon, lat, rows["z"].to_numpy(), strict=True):
        rec = {k: _clean(v) for k, v in rec.items()}
        features.append({"type": "Feature", "properties": {k: v for k, v in rec.items() if v is not None},
                         "geometry": {"type": "Point", "coordinates": [round(float(x), 8), round(float(y), 8),
                                                                       round(float(z), 3)]}})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"type": "FeatureCollection", "name": "sensors", "features": features}
    path.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    return path
