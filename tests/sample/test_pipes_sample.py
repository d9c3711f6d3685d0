"""Tests for the synthetic pipe networks of the sample district and the EPANET export (no database needed)."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from cim.sample import district as d
from cim.sample import pipes as p

NETWORKS = {"water_lines": "water_points", "drainage_lines": "drainage_points", "gas_lines": "gas_points"}


@pytest.fixture(scope="module")
def layers() -> dict[str, gpd.GeoDataFrame]:
    return p.pipe_layers()


@pytest.fixture(scope="module")
def district_layers() -> dict[str, gpd.GeoDataFrame]:
    return d.district_layers()


def _ends(lines: gpd.GeoDataFrame, points: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Indices into points of each line's QDDH and ZDDH."""
    idx = pd.Series(np.arange(len(points)), index=points["WTDH"])
    return idx[lines["QDDH"]].to_numpy(), idx[lines["ZDDH"]].to_numpy()


def _height(lines: gpd.GeoDataFrame) -> np.ndarray:
    """Pipe height (m): diameter, or the height of a 'W X H' box section."""
    box = lines["DMCC"].fillna("0X0").str.split("X", expand=True)[1].astype(float)
    return np.where(lines["GJ"].isna(), box, lines["GJ"].astype(float).fillna(0)) / 1000


def _crowns(lines: gpd.GeoDataFrame, points: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Crown elevations at both ends: invert + height for drainage, ground - crown depth otherwise."""
    a, b = _ends(lines, points)
    if lines["QDGC"].notna().all():
        h = _height(lines)
        return lines["QDGC"].to_numpy() + h, lines["ZDGC"].to_numpy() + h
    g = points["DMGC"].to_numpy()
    return g[a] - lines["QDMS"].to_numpy(), g[b] - lines["ZDMS"].to_numpy()


@pytest.fixture(scope="module")
def everything(layers: dict) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """All lines of all networks with crown elevations at both ends and heights."""
    parts, z0, z1 = [], [], []
    for lines, points in NETWORKS.items():
        c0, c1 = _crowns(layers[lines], layers[points])
        parts.append(layers[lines])
        z0.append(c0)
        z1.append(c1)
    every = pd.concat(parts, ignore_index=True)
    return every, np.concatenate(z0), np.concatenate(z1), _height(every)


def _width(lines: gpd.GeoDataFrame) -> np.ndarray:
    box = lines["DMCC"].fillna("0X0").str.split("X", expand=True)[0].astype(float)
    return np.where(lines["GJ"].isna(), box, lines["GJ"].astype(float).fillna(0)) / 1000


def _gb_class(lines: gpd.GeoDataFrame) -> np.ndarray:
    """GB 50289-2016 pipe class: water_small / water_large / drainage / gas_low / gas_medium."""
    code, gj = lines["GXDM"].to_numpy(), lines["GJ"].astype(float).fillna(0).to_numpy()
    return np.select([(code == "JS") & (gj <= 200), code == "JS", np.isin(code, ["YS", "WS"]), lines["YL"] == "低压"],
                     ["water_small", "water_large", "drainage", "gas_low"], "gas_medium")


# GB 50289-2016 Table 4.1.9 (beside each other) and 4.1.14 (crossing), clear distances between outer walls (m)
GB_HORIZONTAL = {("drainage", "water_small"): 1.0, ("drainage", "water_large"): 1.5, ("gas_low", "water_small"): 0.5,
                 ("gas_low", "water_large"): 0.5, ("gas_medium", "water_small"): 0.5,
                 ("gas_medium", "water_large"): 0.5, ("drainage", "gas_low"): 1.0, ("drainage", "gas_medium"): 1.2}
GB_VERTICAL = {("drainage", "water_small"): 0.4, ("drainage", "water_large"): 0.4}  # others 0.15
GB_BUILDING = {"water_small": 1.0, "water_large": 3.0, "drainage": 2.5, "gas_low": 0.7, "gas_medium": 1.5}


def _planted_pairs() -> set[frozenset]:
    return {frozenset(i["GXBH"]) for i in p.PLANTED_CLEARANCE_ISSUES}


def test_determinism_and_gpkg(layers: dict, tmp_path) -> None:
    again = p.pipe_layers()
    for name in p.LAYERS:
        pd.testing.assert_frame_equal(layers[name].drop(columns="geometry"), again[name].drop(columns="geometry"))
        assert np.array_equal(shapely.to_wkb(layers[name].geometry.values), shapely.to_wkb(again[name].geometry.values))
    path = p.write_pipes(tmp_path / "pipes.gpkg")
    assert [n for n, _ in pyogrio.list_layers(path)] == list(p.LAYERS)
    back, orig = gpd.read_file(path, layer="drainage_lines"), layers["drainage_lines"]
    assert len(back) == len(orig) and back["GJ"].isna().sum() == orig["GJ"].isna().sum()
    other = p.pipe_layers(seed=7)["water_lines"]
    assert len(other) != len(layers["water_lines"]) or not other.geometry.equals(layers["water_lines"].geometry)


def test_schema_ids_and_geometry(layers: dict) -> None:
    for name, gdf in layers.items():
        assert gdf.crs.to_epsg() == 4547
        assert not shapely.has_z(gdf.geometry.values).any()
        lines = name.endswith("lines")
        assert set(shapely.get_type_id(gdf.geometry.values)) == ({1} if lines else {0})
        fields = p.LINE_FIELDS if lines else p.POINT_FIELDS
        assert list(gdf.columns[:-1]) == list(fields)
        key = "GXBH" if lines else "WTDH"
        assert gdf[key].is_unique
        pattern = r"^(JS|YS|WS|TR)\d{6}$" if lines else r"^(JS|YS|WS|TR)-P\d{6}$"
        assert gdf[key].str.match(pattern).all()
        assert (gdf[key].str[:2] == gdf["GXDM"]).all()
    assert set(layers["water_lines"]["GXDM"]) == {"JS"} and set(layers["gas_lines"]["GXDM"]) == {"TR"}
    assert set(layers["drainage_lines"]["GXDM"]) == {"YS", "WS"}
    assert 3000 <= len(layers["water_lines"]) <= 9000


def test_line_ends_are_their_points(layers: dict) -> None:
    for lines, points in NETWORKS.items():
        ln, pt = layers[lines], layers[points]
        a, b = _ends(ln, pt)  # KeyError if a point is missing
        xy = shapely.get_coordinates(pt.geometry.values)
        c = shapely.get_coordinates(ln.geometry.values)
        first = shapely.get_coordinates(shapely.get_point(ln.geometry.values, 0))
        last = shapely.get_coordinates(shapely.get_point(ln.geometry.values, -1))
        n = shapely.get_num_coordinates(ln.geometry.values)
        assert (n[ln["GXBH"] != "TR000001"] == 2).all()  # straight runs point to point; the planted stub bends
        assert len(c) == n.sum()
        assert np.hypot(*(first - xy[a]).T).max() <= 1e-3
        assert np.hypot(*(last - xy[b]).T).max() <= 1e-3
        assert (ln.geometry.length > 0.5).all()
        assert np.array_equal(pt["DMGC"], np.round(d.ground_height(xy[:, 0], xy[:, 1]), 2))


def test_pipes_lie_under_roads(layers: dict, district_layers: dict) -> None:
    roads = district_layers["roads"]
    corridor = shapely.buffer(shapely.union_all(shapely.buffer(roads.geometry.values, roads["width"] / 2,
                                                               cap_style="flat")), 1e-6)
    w = layers["water_lines"]
    in_road = w[w["GJ"] >= 100]  # everything but the service lines
    assert shapely.within(in_road.geometry.values, corridor).all()
    for name in ("gas_lines", "drainage_lines"):
        assert shapely.within(layers[name].geometry.values, corridor).all()


def test_water_attributes(layers: dict, district_layers: dict) -> None:
    w, pt = layers["water_lines"], layers["water_points"]
    assert w["QDMS"].between(1.0, 1.4).all() and w["ZDMS"].between(1.0, 1.4).all()
    assert w["QDGC"].isna().all() and w["ZDGC"].isna().all()
    assert w["MSND"].between(1990, 2024).all() and (w["QSDW"] == "珠海水务集团").all()
    assert set(w["CZ"]) == {"球墨铸铁", "PE"}
    assert set(w["GJ"]) <= {25, 32, 40, 50, 100, 150, 200, 300, 400, 500, 600}
    names = set(district_layers["roads"]["name"])
    assert set(w["SZDL"]) <= names
    fsw = pt["FSW"].value_counts()
    assert fsw["水厂"] == 1 and fsw["阀门"] > 200 and fsw["消火栓"] > 200 and fsw["水表"] > 300
    valves = pt[pt["FSW"] == "阀门"]
    assert valves["FMZT"].isin(["开", "关"]).all() and valves["KCZ"].isin(["是", "否"]).all()
    assert 0.005 < (valves["FMZT"] == "关").mean() < 0.05 and 0.01 < (valves["KCZ"] == "否").mean() < 0.07
    # valves sit a few metres from a tee or cross (just clear of the other networks' pipes crossing there)
    tees = pt[pt["TZ"].isin(["三通", "四通"])].geometry.values
    near = shapely.STRtree(tees).query_nearest(valves.geometry.values, return_distance=True)[1]
    assert (near <= 12.0).all() and np.median(near) <= 5.0
    # hydrants on 2-3 m laterals
    a, b = _ends(w, pt)
    hyd = (pt["FSW"].to_numpy()[b] == "消火栓")
    assert hyd.sum() == fsw["消火栓"]
    assert w.geometry.length[hyd].between(1.9, 3.0).all()


def test_service_connections(layers: dict, district_layers: dict) -> None:
    w, pt = layers["water_lines"], layers["water_points"]
    b = district_layers["buildings"].set_index("bldg_code")
    conn = pt[pt["TZ"] == "接户"]
    assert conn["JHJZ"].notna().all() and conn["JHJZ"].is_unique
    assert conn["JHJZ"].isin(b.index).all()
    assert len(conn) > 0.7 * len(b)
    fp = b.loc[conn["JHJZ"]].geometry.values
    assert (shapely.distance(conn.geometry.values, shapely.get_exterior_ring(fp)) < 1e-3).all()
    svc = w[w["GJ"] <= 50]
    assert svc["GJ"].between(25, 50).all()
    assert svc["ZDDH"].isin(pt.loc[pt["FSW"] == "水表", "WTDH"]).sum() == (pt["FSW"] == "水表").sum()
    assert 0.2 < (pt["FSW"] == "水表").sum() / len(conn) < 0.4


def test_gas_attributes(layers: dict) -> None:
    g, pt = layers["gas_lines"], layers["gas_points"]
    assert g["QDMS"].between(0.9, 1.5).all() and g["ZDMS"].between(0.9, 1.5).all()
    assert set(g["YL"]) == {"中压A", "低压"} and (g["GXDM"] == "TR").all()
    assert g.loc[g["YL"] == "中压A", "GJ"].between(200, 300).all()
    lp = g[g["YL"] == "低压"]
    assert lp["GJ"].between(100, 160).all() and (lp["CZ"] == "PE").all()
    assert (pt["FSW"] == "调压站").sum() == 1 and (pt["FSW"] == "阀门").sum() > 200


def test_drainage_falls_with_cover(layers: dict, district_layers: dict) -> None:
    dl, dp = layers["drainage_lines"], layers["drainage_points"]
    a, b = _ends(dl, dp)
    length = dl.geometry.length.to_numpy()
    q, z = dl["QDGC"].to_numpy(), dl["ZDGC"].to_numpy()
    assert ((q - z) / length >= 0.003 - 1e-9).all()
    h = _height(dl)
    g = dp["DMGC"].to_numpy()
    assert (g[a] - q - h >= 0.8).all() and (g[b] - z - h >= 0.8).all()
    assert np.allclose(dl["QDMS"], g[a] - q, atol=1e-6) and np.allclose(dl["ZDMS"], g[b] - z, atol=1e-6)
    # cover along the pipes too (every ~5 m)
    n = np.ceil(length / 5).astype(int) + 1
    i = np.repeat(np.arange(len(dl)), n)
    f = (np.arange(len(i)) - np.repeat(np.cumsum(n) - n, n)) / (n[i] - 1)
    xy = shapely.get_coordinates(shapely.line_interpolate_point(dl.geometry.values[i], f, normalized=True))
    crown = q[i] + (z[i] - q[i]) * f + h[i]
    assert (d.ground_height(xy[:, 0], xy[:, 1]) - crown >= 0.8).all()
    # manhole depth: cover to the lowest invert at it
    low = np.full(len(dp), np.inf)
    np.minimum.at(low, a, q)
    np.minimum.at(low, b, z)
    assert np.allclose(dp["JS"], g - low, atol=1e-6)
    # a forest: one pipe leaves every point except the outlets
    out = dp["FSW"] == "出水口"
    assert not dl["QDDH"].duplicated().any()
    assert set(dp.loc[out, "WTDH"]).isdisjoint(dl["QDDH"])
    assert set(dp.loc[~out, "WTDH"]) <= set(dl["QDDH"])
    outlets = dp[out]
    river = district_layers["river"].geometry.iloc[0]
    rain_out = outlets[outlets["GXDM"] == "YS"]
    assert len(rain_out) >= 4 and (shapely.distance(rain_out.geometry.values, river) < 20.0).all()  # on the bank
    sewer_out = outlets[outlets["GXDM"] == "WS"]
    x, y = shapely.get_coordinates(sewer_out.geometry.values).T
    assert len(sewer_out) == 1 and (np.isclose(x, d.ORIGIN[0]) | np.isclose(x, d.ORIGIN[0] + d.SIZE)
                                    | np.isclose(y, d.ORIGIN[1]) | np.isclose(y, d.ORIGIN[1] + d.SIZE)).all()
    # sizes: DN300-1200 or box culverts, never smaller than a pipe flowing in
    box = dl["GJ"].isna()
    assert box.sum() >= 3 and dl.loc[box, "DMCC"].str.match(r"^\d+X\d+$").all()
    assert dl.loc[~box, "GJ"].between(300, 1200).all() and dl.loc[~box, "DMCC"].isna().all()
    main = dl[dp["FSW"].to_numpy()[a] != "雨水篦"]
    wh = main["DMCC"].fillna("0X0").str.split("X", expand=True).astype(float)
    area = np.where(main["GJ"].isna(), wh[0] * wh[1] / 1e6, np.pi / 4 * (main["GJ"].astype(float) / 1000) ** 2)
    area = pd.Series(area, index=main.index)
    nxt = pd.Series(area.to_numpy(), index=main["QDDH"])
    down = nxt.reindex(main["ZDDH"]).to_numpy()
    assert (np.isnan(down) | (down >= area.to_numpy() - 1e-9)).all()
    assert (dp["FSW"] == "雨水篦").sum() > 50


def test_epanet_export(layers: dict, tmp_path) -> None:
    import wntr  # a dev dependency: `make test` installs it

    path = p.write_water_inp(tmp_path / "water.inp")
    text = path.read_text(encoding="utf-8")
    for section in ("[TITLE]", "[JUNCTIONS]", "[RESERVOIRS]", "[PIPES]", "[TAGS]", "[OPTIONS]", "[COORDINATES]",
                    "[END]"):
        assert section in text
    w, pt = layers["water_lines"], layers["water_points"]
    wn = wntr.network.WaterNetworkModel(str(path))
    assert wn.num_pipes == len(w) and wn.num_reservoirs == 1 and wn.num_junctions == len(pt) - 1
    assert set(wn.pipe_name_list) == set(w["GXBH"])
    tags = dict(re.findall(r"^ NODE\t(\S+)\t(\S+)$", text, flags=re.M))
    conn = pt[pt["TZ"] == "接户"]
    assert all(tags[i] == f"connection:{c}" for i, c in zip(conn["WTDH"], conn["JHJZ"], strict=True))
    assert sum(t == "valve" for t in tags.values()) == (pt["FSW"] == "阀门").sum()
    j = wn.get_node(conn["WTDH"].iloc[0])
    assert j.base_demand == pytest.approx(0.05 / 1000)
    pipe = wn.get_link(w["GXBH"].iloc[0])
    assert pipe.length == pytest.approx(w.geometry.length.iloc[0], abs=1e-3)
    assert pipe.roughness in (130, 140)
    res = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(tmp_path / "water"))
    pressure = res.node["pressure"].iloc[0][wn.junction_name_list]
    assert (pressure > 0).mean() > 0.95


def _crossing_gaps(everything: tuple) -> pd.DataFrame:
    every, z0, z1, h = everything
    g = every.geometry.values
    i, j = shapely.STRtree(g).query(g, predicate="intersects")
    net = every["GXDM"].to_numpy()
    keep = (i < j) & (net[i] != net[j])
    i, j = i[keep], j[keep]
    pt = shapely.intersection(g[i], g[j])
    assert (shapely.get_type_id(pt) == 0).all()
    fi = shapely.line_locate_point(g[i], pt, normalized=True)
    fj = shapely.line_locate_point(g[j], pt, normalized=True)
    ci, cj = z0[i] + (z1[i] - z0[i]) * fi, z0[j] + (z1[j] - z0[j]) * fj
    gap = np.maximum(ci - h[i] - cj, cj - h[j] - ci)
    return pd.DataFrame({"a": every["GXBH"].to_numpy()[i], "b": every["GXBH"].to_numpy()[j], "gap": gap})


def _segments(every: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Straight pieces of all lines: (line index, (n, 2, 2) coordinates)."""
    g = every.geometry.values
    n = shapely.get_num_coordinates(g)
    c = shapely.get_coordinates(g)
    first = np.repeat(np.cumsum(n) - n, n - 1) + np.arange((n - 1).sum()) - np.repeat(np.cumsum(n - 1) - (n - 1), n - 1)
    return np.repeat(np.arange(len(g)), n - 1), np.stack([c[first], c[first + 1]], 1)


def _parallel_close(everything: tuple, limit: float) -> pd.DataFrame:
    """Pairs of lines of different networks running parallel (within 20 degrees) closer than limit somewhere."""
    every = everything[0]
    line, c = _segments(every)
    seg = shapely.linestrings(c)
    length = shapely.length(seg)
    n = np.ceil(length / 2.0).astype(int) + 1
    i = np.repeat(np.arange(len(seg)), n)
    f = (np.arange(len(i)) - np.repeat(np.cumsum(n) - n, n)) / (n[i] - 1)
    smp = shapely.line_interpolate_point(seg[i], f, normalized=True)
    k, j = shapely.STRtree(seg).query(smp, predicate="dwithin", distance=limit)
    a, net = i[k], every["GXDM"].to_numpy()
    keep = net[line[a]] != net[line[j]]
    a, j = a[keep], j[keep]
    u = (c[:, 1] - c[:, 0]) / length[:, None]
    par = np.abs((u[a] * u[j]).sum(1)) > np.cos(np.radians(20))
    ids = every["GXBH"].to_numpy()
    return pd.DataFrame({"a": ids[line[a[par]]], "b": ids[line[j[par]]]}).drop_duplicates()


def _gb_violations(everything: tuple) -> pd.DataFrame:
    """GB 50289 check the way cim.analysis.clearance does it: lines of different networks (rain and sewer are one
    network) that cross are checked vertically at the crossing, all other pairs within reach horizontally."""
    every, z0, z1, h = everything
    g, w, cls = every.geometry.values, _width(every), _gb_class(every)
    net = every["GXDM"].replace({"YS": "PS", "WS": "PS"}).to_numpy()
    i, j = shapely.STRtree(g).query(g, predicate="dwithin", distance=4.0)
    keep = (i < j) & (net[i] != net[j])
    i, j = i[keep], j[keep]
    pair = [tuple(sorted(x)) for x in zip(cls[i], cls[j], strict=True)]
    cross = shapely.intersects(g[i], g[j])
    pt = shapely.intersection(g[i[cross]], g[j[cross]])
    fi = shapely.line_locate_point(g[i[cross]], pt, normalized=True)
    fj = shapely.line_locate_point(g[j[cross]], pt, normalized=True)
    ci = z0[i[cross]] + (z1[i[cross]] - z0[i[cross]]) * fi
    cj = z0[j[cross]] + (z1[j[cross]] - z0[j[cross]]) * fj
    gap = np.empty(len(i))
    gap[cross] = np.maximum(ci - h[i[cross]] - cj, cj - h[j[cross]] - ci)
    gap[~cross] = shapely.distance(g[i[~cross]], g[j[~cross]]) - (w[i[~cross]] + w[j[~cross]]) / 2
    need = np.where(cross, [GB_VERTICAL.get(p, 0.15) for p in pair], [GB_HORIZONTAL.get(p, 0.0) for p in pair])
    bad = gap < need - 1e-6
    ids = every["GXBH"].to_numpy()
    return pd.DataFrame({"a": ids[i[bad]], "b": ids[j[bad]], "kind": np.where(cross[bad], "vertical", "horizontal"),
                         "gap": gap[bad], "need": need[bad]})


def test_planted_clearance_issues(layers: dict, everything: tuple) -> None:
    issues = {i["kind"]: i for i in p.PLANTED_CLEARANCE_ISSUES}
    assert set(issues) == {"horizontal", "vertical"}
    every = everything[0].set_index("GXBH")
    gas, water = (every.geometry[i] for i in issues["horizontal"]["GXBH"])
    assert gas.distance(water) == pytest.approx(0.4, abs=0.01)
    beside = shapely.intersection(water.buffer(0.45, cap_style="flat"), gas)
    assert beside.length == pytest.approx(issues["horizontal"]["length_m"], abs=0.5)
    gaps = _crossing_gaps(everything)
    pair = frozenset(issues["vertical"]["GXBH"])
    hit = gaps[[frozenset(x) == pair for x in zip(gaps["a"], gaps["b"], strict=True)]]
    assert len(hit) == 1 and 0.0 <= hit["gap"].iloc[0] < 0.15
    assert hit["gap"].iloc[0] == pytest.approx(issues["vertical"]["gap_m"], abs=0.015)
    assert {everything[0].set_index("GXBH").loc[i, "GXDM"] for i in issues["vertical"]["GXBH"]} == {"JS", "WS"}


def test_gb50289_clearances_only_planted(everything: tuple, layers: dict, district_layers: dict) -> None:
    found = _gb_violations(everything)
    assert {frozenset(x) for x in zip(found["a"], found["b"], strict=True)} == _planted_pairs(), found
    assert set(found["kind"]) == {"horizontal", "vertical"}
    # and from buildings, a service line being exempt for the building it serves
    every = everything[0]
    fp = district_layers["buildings"].geometry.values
    codes = district_layers["buildings"]["bldg_code"].to_numpy()
    wl, wp = layers["water_lines"], layers["water_points"].set_index("WTDH")
    served = wp["JHJZ"].reindex(wl["ZDDH"]).to_numpy(object)
    after_meter = pd.Series(served, index=wl["QDDH"].to_numpy())
    served = np.where(pd.isna(served), after_meter.groupby(level=0).first().reindex(wl["ZDDH"]).to_numpy(), served)
    serves = dict(zip(wl["GXBH"], served, strict=True))
    li, bj = shapely.STRtree(fp).query(every.geometry.values, predicate="dwithin", distance=4.5)
    gap = shapely.distance(every.geometry.values[li], fp[bj]) - _width(every)[li] / 2
    need = pd.Series(_gb_class(every)[li]).map(GB_BUILDING).to_numpy()
    own = np.array([serves.get(a) == codes[b] for a, b in zip(every["GXBH"].to_numpy()[li], bj, strict=True)])
    assert not ((gap < need) & ~own).any()


def test_no_other_clearance_conflicts(everything: tuple) -> None:
    planted = _planted_pairs()
    gaps = _crossing_gaps(everything)
    assert len(gaps) > 1000
    bad = gaps[(gaps["gap"] < 0.15) & ~pd.Series([frozenset(x) in planted for x in zip(gaps["a"], gaps["b"],
                                                                                         strict=True)])]
    assert bad.empty, bad.head()
    close = _parallel_close(everything, 1.0)
    close = close[[frozenset(x) not in planted for x in zip(close["a"], close["b"], strict=True)]]
    assert close.empty, close.head()
