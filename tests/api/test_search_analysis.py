"""3D queries and pipe analyses over HTTP, checked against the model (SQL, shapely) and cim.analysis itself;
and the tilesets at /tiles."""

from __future__ import annotations

import math

from pyproj import Transformer

from cim.analysis.isolation import isolate, valve_segments
from cim.analysis.network import load_graph
from cim.analysis.trace import trace
from tests.helpers import fetch

TO_LONLAT = Transformer.from_crs(4547, 4326, always_xy=True)
EPSG4547 = "http://www.opengis.net/def/crs/EPSG/0/4547"


def pages(client, path: str, **params) -> list[dict]:
    body = client.get(path, params={"limit": 1000, **params})
    assert body.status_code == 200, body.text
    body = body.json()
    features = body["features"]
    while (nxt := next((k["href"] for k in body["links"] if k["rel"] == "next"), None)) is not None:
        body = client.get(nxt).json()
        features += body["features"]
    return features


def test_search_box_returns_objects_meeting_it_across_collections(client, api):
    (x, y), = fetch(api.model, "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Envelope(geom)) c FROM city_object "
                               "WHERE kind = 'bim_building') t")
    # a 4 m box in the middle of the BIM building's second storey, in the storage CRS (northing, easting)
    (z,), = fetch(api.model, "SELECT base_z + 1.5 FROM city_object WHERE kind = 'bim_storey' AND name = '2F'")
    box = f"{y - 2},{x - 2},{z - 0.5},{y + 2},{x + 2},{z + 0.5}"
    found = pages(client, "/search/box", bbox=box, **{"bbox-crs": EPSG4547})
    by_collection = {f["properties"]["collection"] for f in found}
    kinds = {f["properties"]["kind"] for f in found}
    assert "bim" in by_collection and {"bim_storey", "bim_building"} <= kinds
    assert "buildings" in by_collection  # the LOD1 block the BIM model stands for is a solid there too
    assert not {"water", "drainage", "gas"} & by_collection  # nothing underground 1.5 m above the floor
    only = pages(client, "/search/box", bbox=box, collections="buildings", **{"bbox-crs": EPSG4547})
    assert {f["properties"]["collection"] for f in only} == {"buildings"}


def test_search_near_sorted_by_3d_distance(client, api):
    code, x, y, z = fetch(api.model, "SELECT o.code, ST_X(p), ST_Y(p), ST_Z(p) FROM (SELECT code, "
                                     "ST_LineInterpolatePoint(geom, 0.5) p FROM city_object WHERE layer = 'gas' "
                                     "ORDER BY code LIMIT 1) o")[0]
    lon, lat = TO_LONLAT.transform(x, y)
    found = pages(client, "/search/near", point=f"{lon},{lat},{z + 3}", distance=5,
                  properties="distance_m,kind,collection")
    dist = [f["properties"]["distance_m"] for f in found]
    assert dist == sorted(dist) and max(dist) <= 5
    gas = next(f for f in found if f["id"] == code)
    (d_mm,), = fetch(api.model, "SELECT diameter_mm FROM pipe_segment WHERE code = %s", (code,))
    assert gas["properties"]["distance_m"] == round(3 - d_mm / 2000, 3)
    line = pages(client, "/search/near", line=f"{lon},{lat},{z + 3},{lon + 0.0001},{lat},{z + 3}", distance=5)
    assert code in {f["id"] for f in line}
    assert client.get("/search/near", params={"point": f"{lon},{lat}", "distance": 5}).status_code == 400


def test_search_elevation(client, api):
    deep = pages(client, "/search/elevation", zmin=-100, zmax=-2, mode="within", properties="top_z,base_z")
    expected = {c for (c,) in fetch(api.model, "SELECT code FROM city_object WHERE base_z >= -100 AND top_z <= -2")}
    assert {f["id"] for f in deep} == expected and expected
    assert client.get("/search/elevation", params={"zmin": 5, "zmax": 1}).status_code == 400


def test_search_beneath_a_building_and_a_road(client, api):
    code, = next(r for r in fetch(api.model, """
        WITH p AS MATERIALIZED (SELECT geom FROM city_object WHERE kind LIKE '%%_pipe')
        SELECT b.code FROM city_object b JOIN p ON ST_Intersects(b.geom, p.geom)
        WHERE b.layer = 'buildings' ORDER BY b.code LIMIT 1"""))
    found = pages(client, "/search/beneath", code=code, properties="depth_below_m,kind,collection")
    assert found and all(f["properties"]["depth_below_m"] > 0 for f in found)
    expected = {c for (c,) in fetch(api.model, """
        SELECT p.code FROM city_object b, city_object p WHERE b.code = %s AND ST_Intersects(b.geom, p.geom)
        AND p.top_z < b.base_z AND (p.kind LIKE '%%_pipe' OR p.kind LIKE '%%_node')""", (code,))}
    assert {f["id"] for f in found} == expected
    road, width = fetch(api.model, "SELECT code, (attributes->>'width')::float FROM city_object WHERE layer = "
                                   "'roads' ORDER BY code LIMIT 1")[0]
    under = pages(client, "/search/beneath", code=road, collections="water,water-nodes")
    expected = {c for (c,) in fetch(api.model, """
        SELECT p.code FROM city_object r, city_object p WHERE r.code = %s AND p.layer = 'water'
        AND ST_Intersects(ST_Buffer(ST_Force2D(r.geom), %s / 2, 'endcap=flat join=round'), p.geom)
        AND p.top_z < r.base_z""", (road, width))}
    assert {f["id"] for f in under} == expected and expected
    assert client.get("/search/beneath", params={"footprint": "POLYGON((0 0,1 0,1 1,0 0))"}).status_code == 400


def test_isolation_over_http_equals_the_analysis(client, api):
    body = client.get("/analysis/isolation", params={"target": "JS000100"}).json()
    direct = isolate(valve_segments(load_graph(api.model, "water")), "JS000100", (), True)
    assert body["highlight"]["valve_to_close"] == direct.valves_to_close
    assert body["highlight"]["isolated_pipe"] == direct.isolated_pipes
    assert body["highlight"]["affected_building"] == direct.buildings
    assert body["summary"] == {**direct.summary(), "target": body["highlight"]["target"][0]}
    roles = {f["id"]: f["properties"]["role"] for f in body["features"]}
    assert all(roles[v] == "valve_to_close" for v in direct.valves_to_close)
    assert all(roles[b] == "affected_building" for b in direct.buildings)
    assert set(roles) == set(body["codes"])
    assert body["result"]["if_fails"].keys() == direct.if_fails.keys()
    failed = direct.valves_to_close[0]
    plan_b = client.get("/analysis/isolation", params={"target": "JS000100", "failed": failed}).json()
    assert failed in plan_b["highlight"]["valve_failed"]
    assert plan_b["highlight"]["valve_to_close"] == direct.if_fails[failed]["valves_to_close"]


def test_isolation_at_a_clicked_point(client, api):
    code, x, y = fetch(api.model, "SELECT code, ST_X(ST_LineInterpolatePoint(geom, 0.5)), "
                                  "ST_Y(ST_LineInterpolatePoint(geom, 0.5)) FROM city_object WHERE layer = 'water' "
                                  "ORDER BY code OFFSET 40 LIMIT 1")[0]
    lon, lat = TO_LONLAT.transform(x, y)
    body = client.get("/analysis/isolation", params={"at": f"{lon},{lat}", "plan-b": "false"}).json()
    assert body["highlight"]["target"] == [code]


def test_trace_and_path(client, api):
    graph = load_graph(api.model, "water")
    body = client.get("/analysis/trace", params={"start": "JS000100", "kind": "downstream"}).json()
    direct = trace(graph, "JS000100", "downstream")
    assert body["highlight"]["pipe"] == direct.pipes and body["summary"] == direct.summary()
    path = client.get("/analysis/path", params={"start": "JS000100", "end": "JS000200"}).json()
    assert path["summary"]["pipes"] == len(path["highlight"]["pipe"]) > 0
    assert client.get("/analysis/trace", params={"start": "nope"}).status_code == 400
    assert client.get("/analysis/trace", params={"start": "JS000100", "layer": "nope"}).status_code == 400


def test_segments_clearance_excavation_profile(client, api):
    seg = client.get("/analysis/segments", params={"top": 5}).json()
    assert seg["summary"]["segments"] > 10 and len(seg["result"]["valves"]) == 5
    clear = client.get("/analysis/clearance").json()
    assert clear["summary"]["violations"] == 2  # the sample's two planted defects
    assert len(clear["result"]["violations"]) == 2 and clear["features"]
    # a pit over the middle of a water pipe, 3 m deep: it hits that pipe
    code, x, y = fetch(api.model, "SELECT code, ST_X(ST_LineInterpolatePoint(geom, 0.5)), "
                                  "ST_Y(ST_LineInterpolatePoint(geom, 0.5)) FROM city_object WHERE layer = 'water' "
                                  "ORDER BY code LIMIT 1")[0]
    ring = [TO_LONLAT.transform(x + dx, y + dy) for dx, dy in ((-3, -3), (3, -3), (3, 3), (-3, 3), (-3, -3))]
    pit = {"polygon": {"type": "Polygon", "coordinates": [ring]}, "depth": 3.0}
    exc = client.post("/analysis/excavation", json=pit).json()
    assert code in exc["highlight"]["hit"]
    assert client.post("/analysis/excavation", json={**pit, "depth": -1}).status_code == 400
    line = {"type": "Polygon", "coordinates": [[ring[0], ring[1], ring[0]]]}
    assert client.post("/analysis/excavation", json={**pit, "polygon": line}).status_code == 400
    lon0, lat0 = TO_LONLAT.transform(x - 20, y - 20)
    lon1, lat1 = TO_LONLAT.transform(x + 20, y + 20)
    prof = client.get("/analysis/profile", params={"line": f"{lon0},{lat0},{lon1},{lat1}"}).json()
    assert code in prof["highlight"]["crossed"]
    chain = [p["chainage_m"] for p in prof["result"]["pipes"]]
    assert chain == sorted(chain) and math.isclose(prof["result"]["length_m"], math.hypot(40, 40), rel_tol=1e-4)


def test_tiles_are_served_with_types_etags_and_cors(client, api):
    r = client.get("/tiles/tileset.json", headers={"Origin": "http://viewer.example"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.headers["access-control-allow-origin"] in ("*", "http://viewer.example")
    assert r.headers["cache-control"] == "no-cache" and r.headers["etag"]
    again = client.get("/tiles/tileset.json", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    layer = client.get("/tiles/buildings/tileset.json").json()
    uri = next(t for t in _contents(layer["root"]))
    glb = client.get(f"/tiles/buildings/{uri}")
    assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
    assert glb.content[:4] == b"glTF" and "max-age" in glb.headers["cache-control"]
    assert client.get("/tiles/nope.json").status_code == 404
    assert client.get("/tiles/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
    coll = client.get("/collections/water").json()
    href = next(k["href"] for k in coll["links"] if k["rel"].endswith("/tileset"))
    assert client.get(href).status_code == 200


def _contents(tile: dict):
    if "content" in tile:
        yield tile["content"]["uri"]
    for child in tile.get("children", []):
        yield from _contents(child)


def test_object_detail_of_a_pipe_and_a_node(client, api):
    code, frm = fetch(api.model, "SELECT code, from_node FROM pipe_segment WHERE network = 'water' ORDER BY code "
                                 "LIMIT 1")[0]
    pipe = client.get(f"/objects/{code}").json()
    assert pipe["pipe"]["from_node"] == frm and pipe["collection"] == "water"
    assert pipe["lineage"]["import"]["source_file"] == "pipes.gpkg"
    node = client.get(f"/objects/{frm}").json()
    assert code in {p["code"] for p in node["node"]["pipes"]} and node["collection"] == "water-nodes"
