"""OGC API - Features over the sample: collections, paging, bbox/crs/datetime/sortby/properties, and CQL2
filters (text and JSON, 2D, 3D, temporal) checked against the same question asked in SQL or shapely."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from tests.helpers import fetch

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4547 = "http://www.opengis.net/def/crs/EPSG/0/4547"
TO_LONLAT = Transformer.from_crs(4547, 4326, always_xy=True)


def all_items(client, collection: str, **params) -> tuple[list[dict], int]:
    """Every feature of a query, following `next` links; and numberMatched."""
    page = client.get(f"/collections/{collection}/items", params={"limit": 1000, **params})
    assert page.status_code == 200, page.text
    body = page.json()
    features, matched = body["features"], body["numberMatched"]
    while (nxt := next((link["href"] for link in body["links"] if link["rel"] == "next"), None)) is not None:
        body = client.get(nxt).json()
        features += body["features"]
    assert len(features) == matched
    return features, matched


def codes(features: list[dict]) -> set[str]:
    return {f["id"] for f in features}


def sql_codes(model, where: str, params: tuple = ()) -> set[str]:
    return {c for (c,) in fetch(model, f"SELECT code FROM city_object o LEFT JOIN pipe_segment s USING (code) "
                                       f"WHERE {where}", params)}


def test_landing_conformance_and_collections(client, api):
    landing = client.get("/").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter" in conf
    found = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    expected = {}
    for layer, kind, n in fetch(api.model, "SELECT layer, kind, count(*) FROM city_object GROUP BY 1, 2"):
        cid = f"{layer}-nodes" if kind.endswith("_node") else layer
        expected[cid] = expected.get(cid, 0) + n
    assert {c: v["x-cim-count"] for c, v in found.items()} == expected
    buildings = found["buildings"]
    lon0, lat0, lon1, lat1 = buildings["extent"]["spatial"]["bbox"][0]
    assert 113.4 < lon0 < lon1 < 113.7 and 22.1 < lat0 < lat1 < 22.4
    assert buildings["storageCrs"] == EPSG4547 and CRS84 in buildings["crs"]
    tiles = [c for c in buildings["content"] if c["type"] == "application/json+3dtiles"]
    assert tiles and tiles[0]["href"].endswith("/tiles/buildings/tileset.json")
    assert client.get("/api").json()["paths"]["/collections/{collectionId}/items"]


def test_paging_visits_every_feature_once(client, api):
    features, matched = all_items(client, "roads", limit=50)
    assert matched == 220 and len(codes(features)) == 220
    assert codes(features) == sql_codes(api.model, "o.layer = 'roads'")
    first = client.get("/collections/roads/items", params={"limit": 50}).json()
    assert first["numberReturned"] == 50 and first["numberMatched"] == 220
    last = client.get("/collections/roads/items", params={"limit": 50, "offset": 200}).json()
    assert last["numberReturned"] == 20 and not [k for k in last["links"] if k["rel"] == "next"]
    assert [k for k in last["links"] if k["rel"] == "prev"]


def test_geojson_has_z_and_lands_where_the_model_is(client, api):
    code, x, y, z = fetch(api.model, "SELECT code, ST_X(ST_PointN(ST_ExteriorRing(geom), 1)), "
                                     "ST_Y(ST_PointN(ST_ExteriorRing(geom), 1)), base_z FROM city_object "
                                     "WHERE layer = 'buildings' ORDER BY code LIMIT 1")[0]
    ft = client.get(f"/collections/buildings/items/{code}").json()
    lon, lat, h = ft["geometry"]["coordinates"][0][0]
    assert (lon, lat) == pytest.approx(TO_LONLAT.transform(x, y), abs=1e-7)
    assert h == pytest.approx(z, abs=1e-6)
    native = client.get(f"/collections/buildings/items/{code}", params={"crs": EPSG4547})
    assert native.headers["content-crs"] == f"<{EPSG4547}>"
    north, east, _ = native.json()["geometry"]["coordinates"][0][0]  # EPSG:4547 is northing, easting
    assert (east, north) == pytest.approx((x, y), abs=1e-3)
    wgs84 = client.get(f"/collections/buildings/items/{code}",
                       params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}).json()
    assert wgs84["geometry"]["coordinates"][0][0][:2] == pytest.approx([lat, lon], abs=1e-7)


def test_bbox_in_crs84_and_in_the_storage_crs(client, api):
    x0, y0, x1, y1 = 453000, 2463000, 453400, 2463300
    sql = sql_codes(api.model, "o.layer = 'buildings' AND ST_Intersects(o.geom, ST_MakeEnvelope(%s, %s, %s, %s, "
                               "4547))", (x0, y0, x1, y1))
    assert len(sql) > 20
    native, _ = all_items(client, "buildings", bbox=f"{y0},{x0},{y1},{x1}", **{"bbox-crs": EPSG4547})
    assert codes(native) == sql
    # the same rectangle given in CRS84 is not a rectangle in EPSG:4547: compare with the transformed polygon
    lon0, lat0 = TO_LONLAT.transform(x0, y0)
    lon1, lat1 = TO_LONLAT.transform(x1, y1)
    in84, _ = all_items(client, "buildings", bbox=f"{lon0},{lat0},{lon1},{lat1}")
    box84 = shapely.segmentize(shapely.box(lon0, lat0, lon1, lat1), 0.0001)
    back = Transformer.from_crs(4326, 4547, always_xy=True)
    poly = shapely.transform(box84, lambda c: np.column_stack(back.transform(c[:, 0], c[:, 1])))
    expected = sql_codes(api.model, "o.layer = 'buildings' AND ST_Intersects(o.geom, ST_GeomFromText(%s, 4547))",
                         (poly.wkt,))
    assert codes(in84) == expected


def test_bbox_with_heights_keeps_what_reaches_into_the_range(client, api):
    lon0, lat0 = TO_LONLAT.transform(452000, 2462000)
    lon1, lat1 = TO_LONLAT.transform(456000, 2466000)
    tall, _ = all_items(client, "buildings", bbox=f"{lon0},{lat0},60,{lon1},{lat1},1000")
    assert tall and codes(tall) == sql_codes(
        api.model, "o.layer = 'buildings' AND o.top_z >= 60 AND ST_Intersects(o.geom, ST_MakeEnvelope(452000, "
                   "2462000, 456000, 2466000, 4547))")


def test_a_world_bbox_holds_the_whole_district(client, api):
    """A zoomed-out client asks for the world: clipped to the storage CRS's area, not folded by it."""
    for box in ("-180,-90,180,90", "-180,-85,180,85", "100,0,130,60"):
        body = client.get("/collections/buildings/items", params={"bbox": box, "limit": 1}).json()
        assert body["numberMatched"] == 2362, box
    far = client.get("/collections/buildings/items", params={"bbox": "-10,40,10,50"}).json()
    assert far["numberMatched"] == 0
    r = client.get("/collections/buildings/items", params={"bbox": "453000,2463000,453400,2463300"})
    assert r.status_code == 400 and "globe" in r.json()["detail"]  # metres given as degrees


def test_only_listed_crs_are_accepted(client):
    listed = client.get("/collections/buildings").json()["crs"]
    assert "http://www.opengis.net/def/crs/EPSG/0/3857" in listed
    for uri in listed:
        assert client.get("/collections/roads/items", params={"crs": uri, "limit": 1}).status_code == 200
    r = client.get("/collections/roads/items", params={"crs": "http://www.opengis.net/def/crs/EPSG/0/2000"})
    assert r.status_code == 400 and "not one of this server's CRSs" in r.json()["detail"]


def test_datetime_selects_objects_valid_then(client, api):
    at, _ = all_items(client, "buildings", datetime="2010-06-01T00:00:00Z")
    assert codes(at) == sql_codes(api.model, "o.layer = 'buildings' AND (o.valid_from IS NULL OR o.valid_from <= "
                                             "'2010-06-01Z') AND (o.valid_to IS NULL OR o.valid_to >= '2010-06-01Z')")
    since, _ = all_items(client, "buildings", datetime="2015-01-01T00:00:00Z/..")
    assert len(since) == len(at) + len(codes(since) - codes(at)) and len(since) > len(at)
    assert client.get("/collections/buildings/items", params={"datetime": "2020-01-01/2010-01-01"}).status_code == 400


def test_sortby_and_properties(client):
    body = client.get("/collections/buildings/items",
                      params={"sortby": "-top_z,code", "properties": "top_z,use", "limit": 30}).json()
    tops = [f["properties"]["top_z"] for f in body["features"]]
    assert tops == sorted(tops, reverse=True)
    assert all(set(f["properties"]) == {"top_z", "use"} for f in body["features"])
    up = client.get("/collections/buildings/items", params={"sortby": "+height", "limit": 5}).json()
    heights = [f["properties"]["height"] for f in up["features"]]
    assert heights == sorted(heights)
    assert client.get("/collections/buildings/items", params={"sortby": "nope"}).status_code == 400


def test_queryable_as_parameter(client, api):
    found, _ = all_items(client, "water", material="PE")
    assert codes(found) == sql_codes(api.model, "o.layer = 'water' AND s.material = 'PE'")
    assert client.get("/collections/water/items", params={"diameter_mm": "wide"}).status_code == 400


def test_queryables_schema(client):
    schema = client.get("/collections/water/queryables").json()
    props = schema["properties"]
    assert props["geometry"]["format"] == "geometry-any"
    assert props["diameter_mm"]["type"] == "number" and props["material"]["type"] == "string"
    assert props["valid_from"]["format"] == "date-time"
    assert "GJ" in props  # a CJJ 61 source field, typed from the data
    assert client.get("/collections/nope/queryables").status_code == 404


# CQL2 text, the same in CQL2 JSON, and the SQL (over city_object o LEFT JOIN pipe_segment s) it must equal.
CQL2_CASES = [
    ("buildings", "height > 30 AND use = 'residential'",
     {"op": "and", "args": [{"op": ">", "args": [{"property": "height"}, 30]},
                            {"op": "=", "args": [{"property": "use"}, "residential"]}]},
     "o.layer = 'buildings' AND (o.attributes->>'height')::float > 30 AND o.attributes->>'use' = 'residential'"),
    ("buildings", "floors IS NULL OR height BETWEEN 10 AND 12",
     {"op": "or", "args": [{"op": "isNull", "args": [{"property": "floors"}]},
                           {"op": "between", "args": [{"property": "height"}, 10, 12]}]},
     "o.layer = 'buildings' AND (o.attributes->>'floors' IS NULL OR jsonb_typeof(o.attributes->'floors') = 'null' "
     "OR (o.attributes->>'height')::float BETWEEN 10 AND 12)"),
    ("buildings", "use IN ('commercial', 'public') AND NOT (year < 2000)",
     {"op": "and", "args": [{"op": "in", "args": [{"property": "use"}, ["commercial", "public"]]},
                            {"op": "not", "args": [{"op": "<", "args": [{"property": "year"}, 2000]}]}]},
     "o.layer = 'buildings' AND o.attributes->>'use' IN ('commercial', 'public') AND "
     "NOT ((o.attributes->>'year')::int < 2000)"),
    ("buildings", "CASEI(use) LIKE 'RES%'",
     {"op": "like", "args": [{"op": "casei", "args": [{"property": "use"}]}, {"op": "casei", "args": ["RES%"]}]},
     "o.layer = 'buildings' AND o.attributes->>'use' ILIKE 'res%%'"),
    ("buildings", "top_z - base_z > 2 * floors + 10",
     {"op": ">", "args": [{"op": "-", "args": [{"property": "top_z"}, {"property": "base_z"}]},
                          {"op": "+", "args": [{"op": "*", "args": [2, {"property": "floors"}]}, 10]}]},
     "o.layer = 'buildings' AND o.top_z - o.base_z > 2 * (o.attributes->>'floors')::float + 10"),
    ("buildings", "T_AFTER(valid_from, TIMESTAMP('2015-01-01T00:00:00Z'))",
     {"op": "t_after", "args": [{"property": "valid_from"}, {"timestamp": "2015-01-01T00:00:00Z"}]},
     "o.layer = 'buildings' AND o.valid_from > '2015-01-01Z'"),
    ("buildings", "T_INTERSECTS(valid_from, INTERVAL('2001-01-01', '2003-12-31'))",
     {"op": "t_intersects", "args": [{"property": "valid_from"}, {"interval": ["2001-01-01", "2003-12-31"]}]},
     "o.layer = 'buildings' AND o.valid_from BETWEEN '2001-01-01' AND '2003-12-31'"),
    ("water", "diameter_mm >= 300 AND material <> 'PE'",
     {"op": "and", "args": [{"op": ">=", "args": [{"property": "diameter_mm"}, 300]},
                            {"op": "<>", "args": [{"property": "material"}, "PE"]}]},
     "o.layer = 'water' AND s.diameter_mm >= 300 AND s.material <> 'PE'"),
    ("water", "depth_start > 2 OR slope < -0.01",
     {"op": "or", "args": [{"op": ">", "args": [{"property": "depth_start"}, 2]},
                           {"op": "<", "args": [{"property": "slope"}, -0.01]}]},
     "o.layer = 'water' AND (s.depth_start > 2 OR s.slope < -0.01)"),
]


@pytest.mark.parametrize("collection, text, as_json, sql", CQL2_CASES, ids=[c[1][:40] for c in CQL2_CASES])
def test_cql2_equals_sql(client, api, collection, text, as_json, sql):
    expected = sql_codes(api.model, sql)
    assert expected, "the case must select something"
    by_text, _ = all_items(client, collection, filter=text)
    by_json, _ = all_items(client, collection, filter=json.dumps(as_json), **{"filter-lang": "cql2-json"})
    assert codes(by_text) == expected
    assert codes(by_json) == expected


def test_cql2_spatial_in_crs84_and_storage_crs(client, api):
    poly = shapely.Polygon([(453100, 2463100), (453500, 2463150), (453400, 2463500), (453050, 2463400)])
    expected = sql_codes(api.model, "o.layer = 'buildings' AND ST_Intersects(o.geom, ST_GeomFromText(%s, 4547))",
                         (poly.wkt,))
    swapped = shapely.transform(poly, lambda c: c[:, ::-1])  # EPSG:4547 axis order: northing, easting
    native, _ = all_items(client, "buildings", filter=f"S_INTERSECTS(geometry, {swapped.wkt})",
                          **{"filter-crs": EPSG4547})
    assert codes(native) == expected
    within = sql_codes(api.model, "o.layer = 'buildings' AND ST_Within(o.geom, ST_GeomFromText(%s, 4547))",
                       (poly.wkt,))
    inside, _ = all_items(client, "buildings", filter=f"S_WITHIN(geometry, {swapped.wkt})",
                          **{"filter-crs": EPSG4547})
    assert codes(inside) == within and within < expected
    lonlat = shapely.transform(shapely.segmentize(poly, 20), lambda c: np.column_stack(TO_LONLAT.transform(
        c[:, 0], c[:, 1])))
    in84, _ = all_items(client, "buildings", filter=f"S_INTERSECTS(geometry, {shapely.to_wkt(lonlat, 9)})")
    assert len(codes(in84) ^ expected) <= 2  # the edges are densified, not identical


def test_cql2_spatial_on_surfaces_uses_their_footprint(client, api):
    """BIM TINs and LoD2 polyhedral surfaces are tested by the convex hull of their vertices (GEOS cannot)."""
    (x, y), = fetch(api.model, "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Envelope(geom)) c "
                               "FROM city_object WHERE kind = 'bim_building') t")
    lon, lat = TO_LONLAT.transform(x, y)
    found, _ = all_items(client, "bim", filter=f"S_INTERSECTS(geometry, POINT({lon} {lat}))")
    kinds = {f["properties"]["kind"] for f in found}
    assert {"bim_building", "bim_storey", "slab"} <= kinds


def _footprints(model) -> list[tuple[str, shapely.Geometry, float, float]]:
    return [(c, shapely.from_wkb(bytes(w)), b, t) for c, w, b, t in fetch(
        model, "SELECT code, ST_AsBinary(ST_Force2D(geom)), base_z, top_z FROM city_object WHERE layer = 'buildings'")]


def test_cql2_3d_functions_treat_blocks_as_solids(client, api):
    blocks = _footprints(api.model)
    code, foot, base, top = max(blocks, key=lambda b: b[3] - b[2])
    p = foot.representative_point()
    lon, lat = TO_LONLAT.transform(p.x, p.y)
    mid = (base + top) / 2
    inside, _ = all_items(client, "buildings", filter=f"INTERSECTS3D(geometry, POINT Z({lon} {lat} {mid}))")
    assert codes(inside) == {code}
    above, _ = all_items(client, "buildings", filter=f"INTERSECTS3D(geometry, POINT Z({lon} {lat} {top + 1}))")
    assert not above
    # within 15 m in 3D of a point 5 m over the roof: d = sqrt(plan distance² + height difference²)
    z = top + 5.0
    expected = set()
    for c, f, b, t in blocks:
        dz = max(b - z, 0.0, z - t)
        if math.hypot(f.distance(p), dz) <= 15.0:
            expected.add(c)
    near, _ = all_items(client, "buildings", filter=f"DWITHIN3D(geometry, POINT Z({lon} {lat} {z}), 15)")
    assert code in expected and codes(near) == expected
    flat, _ = all_items(client, "buildings", filter=f"DWITHIN(geometry, POINT({lon} {lat}), 15)")
    assert codes(flat) == {c for c, f, _, _ in blocks if f.distance(p) <= 15.0} >= expected


def test_cql2_3d_box(client, api):
    x0, y0, x1, y1 = 453000, 2463000, 453600, 2463600
    lon0, lat0 = TO_LONLAT.transform(x0, y0)
    lon1, lat1 = TO_LONLAT.transform(x1, y1)
    found, _ = all_items(client, "buildings", filter=f"S_INTERSECTS(geometry, BBOX({lon0},{lat0},40,{lon1},{lat1},45))")
    box = shapely.box(*Transformer.from_crs(4326, 4547, always_xy=True).transform_bounds(lon0, lat0, lon1, lat1))
    expected = {c for c, f, b, t in _footprints(api.model) if f.intersects(box) and t >= 40 and b <= 45}
    assert expected and codes(found) == expected


def test_cql2_pipes_in_3d_measure_to_the_outer_wall(client, api):
    code, x, y, z, d = fetch(api.model, "SELECT o.code, ST_X(ST_LineInterpolatePoint(o.geom, 0.5)), "
                                        "ST_Y(ST_LineInterpolatePoint(o.geom, 0.5)), "
                                        "ST_Z(ST_LineInterpolatePoint(o.geom, 0.5)), s.diameter_mm "
                                        "FROM city_object o JOIN pipe_segment s USING (code) WHERE o.layer = 'water' "
                                        "ORDER BY s.diameter_mm DESC, o.code LIMIT 1")[0]
    lon, lat = TO_LONLAT.transform(x, y)
    r = d / 2000
    touching, _ = all_items(client, "water", filter=f"DWITHIN3D(geometry, POINT Z({lon} {lat} {z + r + 0.05}), 0.1)")
    assert code in codes(touching)
    apart, _ = all_items(client, "water", filter=f"DWITHIN3D(geometry, POINT Z({lon} {lat} {z + r + 0.5}), 0.1)")
    assert code not in codes(apart)


@pytest.mark.parametrize("params, detail", [
    ({"filter": "height >"}, "filter"),
    ({"filter": "nope = 1"}, "unknown property"),
    ({"filter": "height = 'tall'"}, "cannot compare"),
    ({"filter": "S_INTERSECTS(height, POINT(1 2))"}, "geometry"),
    ({"filter": "A_CONTAINS(use, ('a'))"}, "array"),
    ({"filter": "{", "filter-lang": "cql2-json"}, "filter"),
    ({"filter": "use = 'x'", "filter-lang": "sql"}, "filter-lang"),
    ({"filter": "S_INTERSECTS(geometry, POINT(1 2))", "filter-crs": "EPSG:1"}, "filter-crs"),
    ({"bbox": "1,2,x,4"}, "bbox"),
    ({"bbox": "3,2,1,4"}, "bbox"),
    ({"bbox-crs": "nonsense", "bbox": "1,2,3,4"}, "bbox-crs"),
    ({"crs": "EPSG:4326x"}, "crs"),
    ({"datetime": "yesterday"}, "datetime"),
    ({"limit": "-1"}, "limit"),
    ({"offset": "many"}, "offset"),
    ({"f": "xml"}, "f"),
    ({"unknown": "1"}, "unknown query parameter"),
])
def test_invalid_parameters_are_400_problems(client, params, detail):
    r = client.get("/collections/buildings/items", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 400 and detail in body["detail"]


def test_not_found(client):
    assert client.get("/collections/nope/items").status_code == 404
    r = client.get("/collections/buildings/items/440402-BLD-9999999")
    assert r.status_code == 404 and r.json()["status"] == 404
    assert client.get("/objects/nope").status_code == 404


def test_large_limits_are_capped(client):
    body = client.get("/collections/roads/items", params={"limit": 10**9}).json()
    assert body["numberReturned"] == 220


@pytest.mark.parametrize("path", ["/", "/collections", "/collections/buildings", "/collections/buildings/items",
                                  "/collections/bim/queryables", "/conformance", "/objects/440402-WAL-0000001"])
def test_html_pages(client, path):
    r = client.get(path, params={"f": "html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<table" in r.text or "<pre" in r.text
    browser = client.get(path, headers={"Accept": "text/html,application/xhtml+xml"})
    assert browser.headers["content-type"].startswith("text/html")
