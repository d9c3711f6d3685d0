"""The sample's sensor registry: fields, limits and locations, and every reference resolving in the imported sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from cim.db.server import drop_database
from cim.sample import district as d
from cim.sample.sensors import KINDS, write_sensors
from tests.conftest import _new_model

DOC_KINDS = {"manhole_cover", "pipe_pressure", "pipe_flow", "tunnel_gas", "tunnel_temperature", "tunnel_humidity",
             "settlement", "water_level", "building_energy"}


@pytest.fixture(scope="module")
def features(sample_dir) -> list[dict]:
    doc = json.loads((sample_dir / "sensors.geojson").read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and "crs" not in doc  # RFC 7946: CRS84 implied
    return doc["features"]


def test_fields_and_mix(features: list[dict]) -> None:
    props = [f["properties"] for f in features]
    ids = [p["id"] for p in props]
    assert 280 <= len(ids) <= 320 and len(set(ids)) == len(ids)
    kinds = [p["kind"] for p in props]
    assert set(kinds) == DOC_KINDS == set(KINDS)
    count = {k: kinds.count(k) for k in DOC_KINDS}
    assert count["manhole_cover"] >= 70 and count["pipe_pressure"] >= 50 and count["building_energy"] >= 50
    assert all(count[k] >= 10 for k in ("tunnel_gas", "tunnel_temperature", "tunnel_humidity", "settlement"))
    for p in props:
        assert p["id"].startswith(KINDS[p["kind"]][0] + "-") and p["name"]
        assert isinstance(p["objects"], list) and p["objects"] and all(":" in r for r in p["objects"])
        assert p["interval_s"] > 0 and p["stale_s"] >= 3 * p["interval_s"] and p.get("deadband", 0) >= 0
        given = [p[k] for k in ("ll", "l", "h", "hh") if k in p]
        assert given and given == sorted(given) and len(set(given)) == len(given)  # ll < l < h < hh
        assert p["roc"] > 0


def test_deterministic(sample_dir, tmp_path) -> None:
    assert write_sensors(tmp_path / "s.geojson").read_bytes() == (sample_dir / "sensors.geojson").read_bytes()


def test_locations(features: list[dict]) -> None:
    lon, lat, z = np.array([f["geometry"]["coordinates"] for f in features]).T
    x, y = Transformer.from_crs("OGC:CRS84", d.CRS, always_xy=True).transform(lon, lat)
    lo, hi = np.array(d.ORIGIN) - 0.01, np.array(d.ORIGIN) + d.SIZE + 0.01
    assert ((x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])).all()
    ground = d.ground_height(x, y)
    kind = np.array([f["properties"]["kind"] for f in features])
    under = np.isin(kind, ["pipe_pressure", "pipe_flow", "tunnel_gas", "tunnel_temperature", "tunnel_humidity"])
    assert (z[under] < ground[under] - 0.5).all()  # devices on buried pipes and in the tunnel
    tunnel = np.isin(kind, ["tunnel_gas", "tunnel_temperature", "tunnel_humidity"])
    assert (z[tunnel] < ground[tunnel] - 2.5).all()
    covers = kind == "manhole_cover"
    assert np.allclose(z[covers], ground[covers], atol=0.01)  # on the cover, at the surface
    water = kind == "water_level"
    river = d.district_layers()["river"].geometry.iloc[0]
    assert shapely.contains_xy(river, x[water], y[water]).all() and (z[water] > ground[water]).all()


def test_every_reference_resolves_in_the_imported_sample(server, sample_dir, features: list[dict]) -> None:
    from cim.importers.cityjson import import_cityjson
    from cim.importers.dem import import_dem
    from cim.importers.gis import import_gis
    from cim.importers.pipes.gis import import_pipes

    m = _new_model()
    try:
        import_dem(m, sample_dir / "dem.tif")
        for layer in ("buildings", "river"):
            import_gis(m, sample_dir / "district.gpkg", layer)
        for network in ("water", "drainage"):
            import_pipes(m, sample_dir / "pipes.gpkg", network)
        _, summary = import_cityjson(m, sample_dir / "utility_tunnel.city.json", "tunnels")
        assert summary["kinds"] == {"tunnel": summary["objects"]} and summary["skipped"] == {}
        refs = sorted({r for f in features for r in f["properties"]["objects"]})
        layers, keys = zip(*(r.split(":", 1) for r in refs), strict=True)
        with m.connect() as conn:
            rows = conn.execute(
                "SELECT q.layer || ':' || q.key, r.kind, n.node_type, o.base_z, o.top_z "
                "FROM unnest(%s::text[], %s::text[]) AS q(layer, key) "
                "LEFT JOIN code_registry r ON r.layer = q.layer AND r.source_key = q.key "
                "LEFT JOIN pipe_node n ON n.code = r.code LEFT JOIN city_object o ON o.code = r.code",
                (list(layers), list(keys))).fetchall()
        found = {ref: (kind, node_type, base, top) for ref, kind, node_type, base, top in rows}
        assert [r for r in refs if found[r][0] is None] == []
        from cim.iot.registry import import_sensors  # and the registry takes the file as it is

        assert len(import_sensors(m, sample_dir / "sensors.geojson").codes) == len(features)
        expect = {"drainage:N:": ("drainage_node", "manhole"), "water:N:": ("water_node", None),
                  "water:P:": ("water_pipe", None), "tunnels:": ("tunnel", None), "buildings:": ("building", None),
                  "river:": ("water", None)}
        for ref, (kind, node_type, base, top) in found.items():
            prefix = next(p for p in expect if ref.startswith(p))
            assert kind == expect[prefix][0], ref
            if expect[prefix][1]:
                assert node_type == expect[prefix][1], ref
            if kind == "tunnel":
                assert top - base >= 3.2 and top < 10
    finally:
        drop_database(m.url)
