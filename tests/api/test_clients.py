"""The API through the clients people use: OWSLib (Python), GDAL's OGC API - Features driver (what QGIS and
ogr2ogr speak) through pyogrio, and the `crs` parameter checked against pyproj. Every answer is compared with
the database itself."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pyogrio
import pytest
import shapely
from owslib.ogcapi.features import Features
from pyproj import Transformer

from cim.model.kinds import NETWORKS
from tests.helpers import fetch

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
NODE_KINDS = {f"{n}_node" for n in NETWORKS}


def _collection_of(layer: str, kind: str) -> str:
    return f"{layer}-nodes" if kind in NODE_KINDS else layer


def _db_collections(api) -> dict[str, int]:
    """Collection id → object count, straight from city_object."""
    out: dict[str, int] = {}
    for layer, kind, n in fetch(api.model, "SELECT layer, kind, count(*) FROM city_object GROUP BY layer, kind"):
        cid = _collection_of(layer, kind)
        out[cid] = out.get(cid, 0) + n
    return out


def _db_codes(api, where: str, params: tuple = ()) -> set[str]:
    return {r[0] for r in fetch(api.model, f"SELECT code FROM city_object WHERE {where}", params)}


@pytest.fixture(scope="module")
def oaf(api) -> Features:
    return Features(api.url)


# ---------------------------------------------------------------------------------------------- OWSLib


def test_owslib_conformance(oaf):
    conforms = set(oaf.conformance()["conformsTo"])
    for cls in ("http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
                "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
                "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
                "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
                "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
                "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text"):
        assert cls in conforms, f"conformance lacks {cls}"


def test_api_definition_is_served_as_the_landing_page_says(client):
    links = [link for link in client.get("/").json()["links"] if link["rel"] == "service-desc"]
    assert len(links) == 1, links
    r = client.get(links[0]["href"])
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.")
    media = r.headers["content-type"].split(";")[0].strip()
    assert media == links[0]["type"].split(";")[0], (
        f"the service-desc link promises {links[0]['type']}, GET /api answers Content-Type {r.headers['content-type']}")


def test_owslib_finds_the_api_definition(oaf):
    try:
        spec = oaf.api()
    except RuntimeError as exc:
        raise AssertionError(
            f"OWSLib Features.api() cannot find the OpenAPI document ({exc}): it follows only a service-desc link "
            f"of type application/vnd.oai.openapi+json;version=3.0 (or the YAML one), and the landing page offers "
            f"only ...;version=3.1") from None
    assert "/collections/{collectionId}/items" in spec["paths"]


def test_owslib_lists_every_collection_of_the_model(api, oaf):
    expected = _db_collections(api)
    listed = oaf.feature_collections()
    assert len(listed) == len(set(listed)), f"duplicate collection ids: {listed}"
    assert sorted(listed) == sorted(expected), "collections differ from the database's (layer, kind) pairs"
    assert {"water", "water-nodes", "drainage", "drainage-nodes", "gas", "gas-nodes"} <= set(listed)
    for cid, n in expected.items():
        page = oaf.collection_items(cid, limit=1)
        assert page["numberMatched"] == n, f"{cid}: numberMatched {page['numberMatched']}, database {n}"
        assert page["numberReturned"] == 1 and len(page["features"]) == 1, cid
        one = oaf.collection(cid)
        assert one["id"] == cid and one["itemType"] == "feature"


def test_owslib_pages_through_roads_by_next_links(api, oaf):
    db_codes = _db_codes(api, "layer = 'roads' AND kind = 'road'")
    assert len(db_codes) == 220
    seen: list[str] = []
    params: dict = {"limit": 50}
    pages = 0
    while True:
        page = oaf.collection_items("roads", **params)
        pages += 1
        assert page["type"] == "FeatureCollection"
        assert page["numberMatched"] == 220, f"page {pages}: numberMatched {page['numberMatched']}"
        assert page["numberReturned"] == len(page["features"]) <= 50
        seen += [f["id"] for f in page["features"]]
        assert all(f["id"] == f["properties"]["code"] for f in page["features"])
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        assert len(nxt) <= 1, f"page {pages} has {len(nxt)} next links"
        if not nxt:
            break
        url = urlsplit(nxt[0]["href"])
        assert url.path.endswith("/collections/roads/items"), nxt[0]["href"]
        assert nxt[0]["type"] == "application/geo+json"
        params = dict(parse_qsl(url.query))  # follow the server's link exactly, through OWSLib
        assert pages < 20, "the next links do not end"
    assert pages == 5, f"220 roads at 50 a page are 5 pages, got {pages}"
    assert len(seen) == len(set(seen)) == 220, "a road came twice or went missing while paging"
    assert set(seen) == db_codes
    prev = [link for link in page["links"] if link["rel"] == "prev"]
    assert prev and "offset=150" in prev[0]["href"], "the last page links back to the one before"


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    return {float: "number", str: "string"}.get(type(value), type(value).__name__)


ACCEPTS = {"number": {"number", "integer"}, "integer": {"integer"}, "string": {"string"}, "boolean": {"boolean"}}


def test_owslib_queryables_describe_the_features(api, oaf):
    for cid in ("roads", "gas", "gas-nodes"):
        q = oaf.collection_queryables(cid)
        assert q["type"] == "object" and q["$schema"].startswith("https://json-schema.org/")
        props = q["properties"]
        assert props["code"].get("x-ogc-role") == "id"
        assert props["geometry"].get("format", "").startswith("geometry-")
        if cid == "gas":
            assert props["diameter_mm"]["type"] == "number" and props["material"]["type"] == "string"
        features = oaf.collection_items(cid, limit=10000)["features"]
        assert len(features) == _db_collections(api)[cid]
        keys = {k for f in features for k in f["properties"]}
        missing = set(props) - keys - {"geometry"}
        assert not missing, f"{cid}: queryables no feature carries: {missing}"
        for name, schema in props.items():
            if schema.get("type") not in ACCEPTS:
                continue
            found = {_json_type(f["properties"][name]) for f in features if f["properties"].get(name) is not None}
            assert found <= ACCEPTS[schema["type"]], (
                f"{cid}.{name} is declared {schema['type']} in the queryables, features carry {found}")


def test_owslib_cql2_filters_match_the_database(api, oaf, client):
    expected = _db_codes(api, "layer = 'buildings' AND kind = 'building' AND attributes->>'use' = 'residential' "
                              "AND (attributes->>'height')::float8 > 30")
    assert 0 < len(expected) < 2362
    text = "use = 'residential' AND height > 30"
    got = oaf.collection_items("buildings", filter=text, limit=10000, **{"filter-lang": "cql2-text"})
    assert got["numberMatched"] == len(expected) == got["numberReturned"]
    assert {f["id"] for f in got["features"]} == expected
    # the same filter as CQL2 JSON, and paged: numberMatched stays the filtered total
    cql_json = ('{"op":"and","args":[{"op":"=","args":[{"property":"use"},"residential"]},'
                '{"op":">","args":[{"property":"height"},30]}]}')
    r = client.get("/collections/buildings/items", params={"filter": cql_json, "filter-lang": "cql2-json",
                                                           "limit": 10})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == len(expected) and r.json()["numberReturned"] == 10
    assert {f["id"] for f in r.json()["features"]} <= expected
    # a spatial filter in CRS84 against PostGIS (the envelope densified as the server does)
    box = (113.545, 22.262, 113.549, 22.266)
    expected = _db_codes(api, "layer = 'buildings' AND kind = 'building' AND ST_Intersects(geom, ST_Transform("
                              "ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, 4326), 0.0005), ST_SRID(geom)))", box)
    assert 0 < len(expected) < 2362
    poly = shapely.box(*box).wkt
    got = oaf.collection_items("buildings", filter=f"S_INTERSECTS(geometry, {poly})", limit=10000)
    assert {f["id"] for f in got["features"]} == expected
    by_bbox = oaf.collection_items("buildings", bbox=list(box), limit=10000)
    assert {f["id"] for f in by_bbox["features"]} == expected, "bbox and S_INTERSECTS disagree"


# ---------------------------------------------------------------------------------------------- GDAL

def _oapif(api) -> str:
    assert "OAPIF" in pyogrio.list_drivers(), (
        f"GDAL {pyogrio.__gdal_version_string__} bundled with pyogrio has no OAPIF driver")
    return "OAPIF:" + api.url


def test_gdal_lists_every_collection(api):
    layers = pyogrio.list_layers(_oapif(api))
    assert sorted(layers[:, 0]) == sorted(_db_collections(api))
    types = dict(layers)
    assert types["buildings"] == "Polygon Z" and types["roads"] == "LineString Z"
    assert types["water"] == "LineString Z" and types["water-nodes"] == "Point Z"


def test_gdal_reads_every_collection_in_full(api):
    """GDAL pages each collection (1000 a page by default) and gets every object once."""
    expected = _db_collections(api)
    for cid, n in expected.items():
        info = pyogrio.read_info(_oapif(api), layer=cid)
        assert info["features"] == n, f"{cid}: GDAL counts {info['features']}, database {n}"
        df = pyogrio.read_dataframe(_oapif(api), layer=cid, columns=["code"])
        assert len(df) == n and df["code"].is_unique, f"{cid}: GDAL read {len(df)} features of {n}"
        assert df.geometry.notna().all() and df.geometry.has_z.all(), f"{cid}: geometry missing or without Z"


def _db_buildings(api, srid: int) -> dict[str, tuple[float, float, float, float]]:
    rows = fetch(api.model, "SELECT code, ST_X(c), ST_Y(c), ST_ZMin(geom), ST_ZMax(geom) FROM ("
                            "SELECT code, geom, ST_Transform(ST_Centroid(geom), %s) AS c FROM city_object "
                            "WHERE layer = 'buildings' AND kind = 'building') s", (srid,))
    return {r[0]: r[1:] for r in rows}


def test_gdal_reads_all_buildings_in_the_storage_crs(api):
    """By default GDAL 3.12 asks for the storage CRS (EPSG:4547, northing first) and swaps back to x/y."""
    df = pyogrio.read_dataframe(_oapif(api), layer="buildings")
    assert len(df) == 2362 and df["id"].is_unique
    assert df.crs is not None and df.crs.to_epsg() == 4547, f"GDAL chose {df.crs}"
    db = _db_buildings(api, 4547)
    assert set(df["id"]) == set(db)
    want = np.array([db[c] for c in df["id"]])
    centroids = shapely.centroid(df.geometry.values)
    dx = np.abs(shapely.get_x(centroids) - want[:, 0]).max()
    dy = np.abs(shapely.get_y(centroids) - want[:, 1]).max()
    assert dx < 0.005 and dy < 0.005, f"centroids off by up to {dx:.4f} m east, {dy:.4f} m north"
    assert ((want[:, 0] > 400_000) & (want[:, 0] < 600_000)).all(), "easting out of the zone: axes swapped?"
    z = [shapely.get_coordinates(g, include_z=True)[:, 2] for g in df.geometry.values]
    dz = max(max(abs(zs.min() - w[2]), abs(zs.max() - w[3])) for zs, w in zip(z, want, strict=True))
    assert dz < 0.005, f"building Z differs from the database by up to {dz:.4f} m"


def test_gdal_reads_all_buildings_in_crs84(api):
    df = pyogrio.read_dataframe(_oapif(api), layer="buildings", CRS="OGC:CRS84")
    assert len(df) == 2362 and df["id"].is_unique
    assert df.crs is not None and df.crs.to_authority() == ("OGC", "CRS84"), f"GDAL chose {df.crs}"
    db = _db_buildings(api, 4326)
    want = np.array([db[c] for c in df["id"]])
    centroids = shapely.centroid(df.geometry.values)
    dlon = np.abs(shapely.get_x(centroids) - want[:, 0]).max()
    dlat = np.abs(shapely.get_y(centroids) - want[:, 1]).max()
    assert dlon < 1e-6 and dlat < 1e-6, f"centroids off by up to {dlon:.2e}° lon, {dlat:.2e}° lat"
    assert 113 < shapely.get_x(centroids).min() and shapely.get_y(centroids).max() < 23, "lon/lat swapped"


def test_gdal_pages_with_a_small_page_size(api):
    roads = pyogrio.read_dataframe(_oapif(api), layer="roads", PAGE_SIZE=50)
    assert len(roads) == 220 and roads["id"].is_unique
    assert set(roads["id"]) == _db_codes(api, "layer = 'roads' AND kind = 'road'")
    gas = pyogrio.read_dataframe(_oapif(api), layer="gas", PAGE_SIZE=300)
    assert len(gas) == 1329 and gas["id"].is_unique
    rows = fetch(api.model, "SELECT code, ST_ZMin(geom), ST_ZMax(geom) FROM city_object WHERE layer = 'gas' "
                            "AND kind = 'gas_pipe'")
    db = {r[0]: r[1:] for r in rows}
    assert set(gas["id"]) == set(db)
    zs = {c: shapely.get_coordinates(g, include_z=True)[:, 2] for c, g in zip(gas["id"], gas.geometry, strict=True)}
    dz = max(max(abs(z.min() - db[c][0]), abs(z.max() - db[c][1])) for c, z in zs.items())
    assert dz < 0.005, f"pipe Z (GDAL) differs from the database by up to {dz:.4f} m"


def test_gdal_spatial_and_attribute_filters(api):
    # bbox in the layer's CRS (EPSG:4547): GDAL sends bbox-crs with the axes northing, easting
    box = (453000, 2463000, 453500, 2463500)
    df = pyogrio.read_dataframe(_oapif(api), layer="buildings", bbox=box)
    expected = _db_codes(api, "layer = 'buildings' AND kind = 'building' AND "
                              "ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, ST_SRID(geom)))", box)
    assert 0 < len(expected) < 2362
    assert set(df["id"]) == expected
    # bbox in CRS84
    box84 = (113.544, 22.263, 113.548, 22.267)
    df = pyogrio.read_dataframe(_oapif(api), layer="buildings", bbox=box84, CRS="OGC:CRS84")
    expected = _db_codes(api, "layer = 'buildings' AND kind = 'building' AND ST_Intersects(geom, ST_Transform("
                              "ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, 4326), 0.0005), ST_SRID(geom)))", box84)
    assert set(df["id"]) == expected
    # an OGR SQL where clause (GDAL evaluates it itself: the OpenAPI declares no cql-text filter-lang it knows)
    df = pyogrio.read_dataframe(_oapif(api), layer="buildings", where="use = 'residential' AND height > 30")
    expected = _db_codes(api, "layer = 'buildings' AND kind = 'building' AND attributes->>'use' = 'residential' "
                              "AND (attributes->>'height')::float8 > 30")
    assert set(df["id"]) == expected


def test_a_world_bbox_holds_every_building(api, client):
    """A client zoomed out to the whole world (QGIS sends its map extent as bbox) still gets every building."""
    r = client.get("/collections/buildings/items", params={"bbox": "-180,-90,180,90", "limit": 1})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == 2362, (
        f"bbox=-180,-90,180,90 matched {r.json()['numberMatched']} of 2362 buildings: crs.to_storage() densifies "
        f"the CRS84 box and projects it whole into EPSG:4547 (Gauss-Kruger, 3° zone), where points far from "
        f"114°E fold over; the projected polygon no longer holds the district")
    df = pyogrio.read_dataframe(_oapif(api), layer="buildings", bbox=(-180, -90, 180, 90), CRS="OGC:CRS84",
                                columns=["code"])
    assert len(df) == 2362, f"GDAL with a world spatial filter read {len(df)} of 2362 buildings"


# ---------------------------------------------------------------------------------------------- crs


@pytest.fixture(scope="module")
def building(api) -> tuple[str, np.ndarray]:
    """A building's code and its ring in the storage CRS (x easting, y northing, z)."""
    code, wkb = fetch(api.model, "SELECT code, ST_AsBinary(geom) FROM city_object WHERE layer = 'buildings' "
                                 "AND kind = 'building' ORDER BY code LIMIT 1 OFFSET 100")[0]
    geom = shapely.from_wkb(bytes(wkb))
    assert geom.geom_type == "Polygon" and geom.has_z
    return code, shapely.get_coordinates(geom, include_z=True)


def _ring(feature: dict) -> np.ndarray:
    assert feature["geometry"]["type"] == "Polygon"
    return np.array(feature["geometry"]["coordinates"][0], dtype=float)


def test_crs_of_one_building_crs84_and_epsg4547(client, building):
    code, storage = building
    r84 = client.get(f"/collections/buildings/items/{code}")
    assert r84.status_code == 200, r84.text
    assert r84.headers.get("content-crs") == f"<{CRS84}>", r84.headers
    r4547 = client.get(f"/collections/buildings/items/{code}", params={"crs": EPSG.format(4547)})
    assert r4547.status_code == 200, r4547.text
    assert r4547.headers.get("content-crs") == f"<{EPSG.format(4547)}>", r4547.headers
    lonlat, ne = _ring(r84.json()), _ring(r4547.json())
    assert lonlat.shape == ne.shape == storage.shape
    assert 113 < lonlat[:, 0].min() < 115 and 22 < lonlat[:, 1].min() < 23, "CRS84 is lon, lat"
    # EPSG:4547 is northing, easting: pyproj with the authority's axis order gives the same numbers
    to4547 = Transformer.from_crs("OGC:CRS84", "EPSG:4547")
    n, e = to4547.transform(lonlat[:, 0], lonlat[:, 1])
    assert np.abs(ne[:, 0] - n).max() < 0.01 and np.abs(ne[:, 1] - e).max() < 0.01, (
        f"EPSG:4547 coordinates are not (northing, easting) of the CRS84 ones: {ne[0]} vs {(n[0], e[0])}")
    assert ne[:, 0].min() > 2_000_000 and ne[:, 1].max() < 1_000_000, "northing first"
    assert np.abs(ne[:, 0] - storage[:, 1]).max() < 0.002 and np.abs(ne[:, 1] - storage[:, 0]).max() < 0.002
    # back again: CRS84 from the database's coordinates
    lon, lat = Transformer.from_crs("EPSG:4547", "OGC:CRS84", always_xy=True).transform(storage[:, 0], storage[:, 1])
    assert np.abs(lonlat[:, 0] - lon).max() < 1e-7 and np.abs(lonlat[:, 1] - lat).max() < 1e-7
    # heights pass unchanged
    assert np.abs(lonlat[:, 2] - storage[:, 2]).max() < 1e-6 and np.abs(ne[:, 2] - storage[:, 2]).max() < 0.002


def test_crs_epsg4326_is_lat_lon_and_3857_is_x_y(client, building):
    code, storage = building
    lonlat = _ring(client.get(f"/collections/buildings/items/{code}").json())
    r = client.get(f"/collections/buildings/items/{code}", params={"crs": EPSG.format(4326)})
    assert r.status_code == 200 and r.headers.get("content-crs") == f"<{EPSG.format(4326)}>"
    latlon = _ring(r.json())
    assert np.abs(latlon[:, 0] - lonlat[:, 1]).max() < 1e-8 and np.abs(latlon[:, 1] - lonlat[:, 0]).max() < 1e-8
    r = client.get(f"/collections/buildings/items/{code}", params={"crs": EPSG.format(3857)})
    assert r.status_code == 200 and r.headers.get("content-crs") == f"<{EPSG.format(3857)}>"
    xy = _ring(r.json())
    x, y = Transformer.from_crs("EPSG:4547", "EPSG:3857", always_xy=True).transform(storage[:, 0], storage[:, 1])
    assert np.abs(xy[:, 0] - x).max() < 0.01 and np.abs(xy[:, 1] - y).max() < 0.01


def test_crs_on_items_pages_and_bbox_crs(client, building):
    code, storage = building
    r = client.get("/collections/buildings/items", params={"limit": 5})
    assert r.status_code == 200 and r.headers.get("content-crs") == f"<{CRS84}>"
    r = client.get("/collections/buildings/items", params={"limit": 5, "crs": EPSG.format(4547)})
    assert r.status_code == 200 and r.headers.get("content-crs") == f"<{EPSG.format(4547)}>"
    assert all(_ring(f)[:, 0].min() > 2_000_000 for f in r.json()["features"]), "northing first on pages too"
    # a box around the building in EPSG:4547's own axis order (northing, easting)
    e0, n0 = storage[:, 0].min() - 1, storage[:, 1].min() - 1
    e1, n1 = storage[:, 0].max() + 1, storage[:, 1].max() + 1
    r = client.get("/collections/buildings/items", params={"bbox": f"{n0},{e0},{n1},{e1}",
                                                           "bbox-crs": EPSG.format(4547), "limit": 100})
    assert r.status_code == 200, r.text
    assert code in {f["id"] for f in r.json()["features"]}, "bbox-crs EPSG:4547 is read northing, easting"
    for bad in ("not a crs", EPSG.format(999999), "http://www.opengis.net/def/crs/0/unsupported"):
        r = client.get("/collections/buildings/items", params={"crs": bad, "limit": 1})
        assert r.status_code == 400, f"crs={bad}: {r.status_code}"
        assert r.headers["content-type"].startswith("application/problem+json")


def test_crs_outside_the_collections_list_is_refused(client):
    """OGC API - Features Part 2 (/req/crs/fc-crs-valid-value, /req/crs/fc-bbox-crs-valid-value): crs and
    bbox-crs must be one of the collection's `crs` list, else 400."""
    listed = set(client.get("/collections/buildings").json()["crs"])
    assert EPSG.format(2000) not in listed
    r = client.get("/collections/buildings/items", params={"crs": EPSG.format(2000), "limit": 1})
    assert r.status_code == 400, (
        f"crs=EPSG:2000 (not in the collection's crs list {sorted(listed)}) answered {r.status_code}, not 400: "
        f"parse_crs accepts any SRID of spatial_ref_sys (Part 2 /req/crs/fc-crs-valid-value)")
    r = client.get("/collections/buildings/items", params={"bbox": "0,0,1,1", "bbox-crs": EPSG.format(2000)})
    assert r.status_code == 400, (
        f"bbox-crs=EPSG:2000 (not in the collection's crs list) answered {r.status_code}, not 400 "
        f"(Part 2 /req/crs/fc-bbox-crs-valid-value)")
