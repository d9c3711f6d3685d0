"""The sample's utility tunnel: a closed box-section solid per section, under one arterial, clear of every pipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from cim.sample import district as d
from cim.sample import pipes as p
from cim.sample import tunnel as tn


@pytest.fixture(scope="module")
def layers() -> dict:
    return d.district_layers()


@pytest.fixture(scope="module")
def pipes() -> dict:
    return p.pipe_layers()


@pytest.fixture(scope="module")
def tunnel(layers, pipes) -> tn.Tunnel:
    return tn.tunnel(d.DEFAULT_SEED, layers, pipes)


@pytest.fixture(scope="module")
def doc(tmp_path_factory) -> dict:
    path = tn.write_tunnel(tmp_path_factory.mktemp("tunnel") / "utility_tunnel.city.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _solids(doc: dict) -> dict[str, tuple[np.ndarray, list[list[int]], list[int]]]:
    tf = doc["transform"]
    verts = np.asarray(doc["vertices"], float) * tf["scale"] + tf["translate"]
    out = {}
    for oid, obj in doc["CityObjects"].items():
        (geom,) = obj["geometry"]
        faces = [surface[0] for surface in geom["boundaries"][0]]
        out[oid] = (verts, faces, geom["semantics"]["values"][0])
    return out


def test_sections_are_closed_outward_solids(doc: dict, tunnel: tn.Tunnel) -> None:
    assert doc["type"] == "CityJSON" and doc["version"] == "2.0"
    assert doc["metadata"]["referenceSystem"].endswith("/EPSG/0/4547")
    assert list(doc["CityObjects"]) == [f"UT-{i:02d}" for i in range(1, len(doc["CityObjects"]) + 1)]
    assert 3 <= len(doc["CityObjects"]) <= 5
    total = 0.0
    for oid, (verts, faces, sem) in _solids(doc).items():
        obj = doc["CityObjects"][oid]
        assert obj["type"] == "Tunnel" and len(sem) == len(faces)
        attrs = obj["attributes"]
        assert {"name", "compartments", "width", "height"} <= set(attrs)
        edges = {}
        for f in faces:
            for a, b in zip(f, f[1:] + f[:1], strict=True):
                edges[(a, b)] = edges.get((a, b), 0) + 1
        # closed and consistently oriented: every edge once each way
        assert all(n == 1 and edges.get((b, a)) == 1 for (a, b), n in edges.items())
        v = tn._signed_volume(verts - verts.mean(0), faces)
        assert v == pytest.approx(tn.WIDTH * tn.HEIGHT * attrs["length"], rel=0.01)  # outward: positive
        total += attrs["length"]
        used = verts[np.unique(np.concatenate(faces))]
        assert np.ptp(used[:, 2]) >= tn.HEIGHT
    assert 600 <= total <= 900
    assert total == pytest.approx(tunnel.length, abs=0.05)


def test_under_an_arterial_with_cover(tunnel: tn.Tunnel, layers: dict) -> None:
    roads = layers["roads"]
    road = roads[roads["name"] == tunnel.road]
    assert (road["class"] == "arterial").all()
    corridor = shapely.union_all(shapely.buffer(road.geometry.values, road["width"].to_numpy() / 2, cap_style="flat"))
    outline = shapely.buffer(shapely.linestrings(tunnel.xy(np.array([0.0, tunnel.length]))), tn.WIDTH / 2,
                             cap_style="flat")
    assert corridor.contains(outline)
    assert not shapely.intersects(outline, layers["buildings"].geometry.values).any()
    cover = tunnel.ground - tunnel.roof
    assert cover.min() == pytest.approx(tn.COVER, abs=1e-6) and np.median(cover) == pytest.approx(tn.COVER)
    assert (np.abs(np.diff(tunnel.roof) / np.diff(tunnel.s)) <= tn.RAMP + 1e-9).all()


def test_clear_of_every_pipe(tunnel: tn.Tunnel, pipes: dict) -> None:
    geoms, c0, c1, h, _ = tn.pipe_bands(pipes)
    outline = shapely.buffer(shapely.linestrings(tunnel.xy(np.array([0.0, tunnel.length]))), tn.WIDTH / 2,
                             cap_style="flat")
    k = shapely.STRtree(geoms).query(outline, predicate="intersects")
    assert len(k) > 10
    inside = shapely.intersection(geoms[k], outline)
    seg = shapely.segmentize(inside, 0.25)
    xy, owner = shapely.get_coordinates(seg, return_index=True)
    frac = shapely.line_locate_point(geoms[k][owner], shapely.points(xy), normalized=True)
    crown = c0[k][owner] + (c1[k][owner] - c0[k][owner]) * frac
    s = (xy - tunnel.start) @ tunnel.axis
    roof = tunnel.roof_at(s)
    above = crown - h[k][owner] >= roof + tn.CLEAR - 0.01
    below = crown <= roof - tn.HEIGHT - tn.CLEAR + 0.01
    assert (above | below).all()


def test_deterministic(tmp_path, layers: dict, pipes: dict) -> None:
    a = tn.write_tunnel(tmp_path / "a.city.json").read_bytes()
    assert tn.write_tunnel(tmp_path / "b.city.json", d.DEFAULT_SEED, layers, pipes).read_bytes() == a
    assert tn.write_tunnel(tmp_path / "c.city.json", seed=7).read_bytes() != a
