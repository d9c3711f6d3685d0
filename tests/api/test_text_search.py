"""GET /search/text over the whole sample: by unified code (whole, digits, dash suffix), name, address and source
id, ranked exact code > whole name/address > prefix > anywhere with ties by code; q is data (quotes, % and _);
bad parameters are 400 problems; every feature carries a point and a bounding sphere placed as the tiles are."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from pyproj import Transformer

from cim.tiler.georef import find_geoid
from tests.helpers import fetch, scalar

GEOJSON = "application/geo+json"
FIELDS = ("code", "name", "address", "source_id")


@pytest.fixture(scope="module")
def objects(api) -> list[tuple]:
    """(code, kind, name, attribute name, address, source_id) of every searchable object, in the database's code
    order (the order ties take)."""
    return fetch(api.model, "SELECT code, kind, name, attributes->>'name', attributes->>'address', source_id "
                            "FROM city_object WHERE kind <> 'terrain' ORDER BY code")


def _tier(value: str | None, q: str) -> int | None:
    if value is None:
        return None
    v, q = value.lower(), q.lower()
    return 1 if v == q else 2 if v.startswith(q) else 3 if q in v else None


def _code_tier(code: str, q: str) -> int | None:
    c, low = code.lower(), q.lower()
    serial = q.lstrip("0") if q.isdigit() else ""
    if c == low:
        return 0
    if (serial and re.sub(r"^.*-0*", "", code) == serial) or c.endswith("-" + low):
        return 1
    if c.startswith(low) or c.endswith(low):
        return 2
    return 3 if low in c else None


def expected(objects: list[tuple], q: str, limit: int, layers: set[str] | None = None) -> list[tuple[str, str]]:
    """(code, matched) of the best `limit` objects by the documented ranking, computed here from the rows."""
    found = []
    for code, kind, name, name_attr, address, source_id in objects:
        names = [t for t in (_tier(name, q), _tier(name_attr, q)) if t is not None]
        tiers = {"code": _code_tier(code, q), "name": min(names) if names else None,
                 "address": _tier(address, q), "source_id": _tier(source_id, q)}
        best = min((t for t in tiers.values() if t is not None), default=None)
        if best is not None:
            network = kind.endswith(("_pipe", "_node"))  # pipes and nodes after the rest of their tier
            found.append((best, network, code, next(f for f in FIELDS if tiers[f] == best)))
    found.sort(key=lambda r: r[:2])  # stable: the database's code order within a tier
    return [(code, matched) for _, _, code, matched in found][:limit]


def search(client, **params) -> dict:
    r = client.get("/search/text", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(GEOJSON)
    body = r.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == len(body["features"])
    return body


def codes(body: dict) -> list[tuple[str, str]]:
    return [(f["id"], f["properties"]["matched"]) for f in body["features"]]


def test_exact_code_first_case_insensitive(client, api, objects):
    code = scalar(api.model, "SELECT code FROM city_object WHERE layer = 'buildings' AND name IS NOT NULL "
                             "ORDER BY code LIMIT 1 OFFSET 40")
    body = search(client, q=f"  {code.lower()} ")
    first = body["features"][0]
    assert first["id"] == code and first["properties"]["matched"] == "code"
    props = first["properties"]
    assert props["code"] == code and props["kind"] == "building" and props["layer"] == "buildings"
    assert props["collection"] == "buildings" and props["name"]
    assert codes(body) == expected(objects, code.lower(), 10)


def test_digits_and_dash_suffixes_find_codes(client, api, objects):
    code = scalar(api.model, "SELECT code FROM city_object WHERE kind = 'building' AND code ~ '-0*[1-9][0-9]{3}$' "
                             "ORDER BY code LIMIT 1")
    serial = code.rsplit("-", 1)[1]
    digits = serial.lstrip("0")
    same_serial = [c for (c,) in fetch(api.model, "SELECT code FROM city_object WHERE kind <> 'terrain' AND "
                                                  "code LIKE %s ORDER BY code", (f"%-{serial}",))]
    assert code in same_serial and len(same_serial) > 1  # e.g. 440402-BLD-0001131 and 440402-JS-0001131
    body = search(client, q=digits, limit=50)
    assert [c for c, _ in codes(body)][:len(same_serial)] == same_serial
    assert all(m == "code" for _, m in codes(body)[:len(same_serial)])
    assert codes(body) == expected(objects, digits, 50)
    # the kind and serial, from a dash: only that object's code ends so
    prefix_free = code.split("-", 1)[1]  # BLD-0001131
    body = search(client, q=prefix_free.lower())
    assert codes(body)[0] == (code, "code")
    assert codes(body) == expected(objects, prefix_free.lower(), 10)


def test_building_name(client, api, objects):
    name, = fetch(api.model, "SELECT name FROM city_object WHERE layer = 'buildings' AND name IS NOT NULL "
                             "ORDER BY code LIMIT 1 OFFSET 7")[0]
    same = [c for (c,) in fetch(api.model, "SELECT code FROM city_object WHERE kind <> 'terrain' AND "
                                           "(lower(name) = lower(%s) OR lower(attributes->>'name') = lower(%s)) "
                                           "ORDER BY code", (name, name))]
    body = search(client, q=name.upper(), limit=50)
    assert [c for c, _ in codes(body)][:len(same)] == same
    assert {f["properties"]["matched"] for f in body["features"][:len(same)]} == {"name"}
    assert body["features"][0]["properties"]["name"] == name
    assert codes(body) == expected(objects, name.upper(), 50)
    # a part of the name: prefix matches before infix ones
    word = name.split()[0]
    body = search(client, q=word, limit=50)
    assert codes(body) == expected(objects, word, 50)


def test_every_sample_building_has_an_address_and_is_found_by_it(client, api, objects):
    assert scalar(api.model, "SELECT count(*) FROM city_object WHERE layer = 'buildings' "
                             "AND attributes->>'address' IS NULL") == 0
    code, address = fetch(api.model, "SELECT code, attributes->>'address' FROM city_object "
                                      "WHERE layer = 'buildings' AND name IS NULL ORDER BY code LIMIT 1 OFFSET 99")[0]
    body = search(client, q=address.lower())
    first = body["features"][0]
    assert first["id"] == code and first["properties"]["matched"] == "address"
    assert first["properties"]["address"] == address and first["properties"]["name"] is None
    assert codes(body) == expected(objects, address.lower(), 10)
    # the road's part: buildings on it by their addresses; "Road 1" puts Road 1 before Road 11, Road 13, …
    road = address.rsplit(" ", 1)[0]
    body = search(client, q=f"{road} 1", limit=50)
    assert body["features"][0]["properties"]["address"] == f"{road} 1"
    assert codes(body) == expected(objects, f"{road} 1", 50)


def test_road_name(client, api, objects):
    name, n = fetch(api.model, "SELECT name, count(*) FROM city_object WHERE layer = 'roads' GROUP BY name "
                               "ORDER BY name LIMIT 1")[0]
    body = search(client, q=name, layer="roads", limit=50)
    assert len(body["features"]) == n
    assert all(f["properties"]["kind"] == "road" and f["properties"]["name"] == name
               and f["properties"]["matched"] == "name" for f in body["features"])
    assert codes(body) == expected([o for o in objects if o[1] == "road"], name, 50)
    # every layer: the road's segments first, then the pipes named after it (whole names), then addresses on it
    body = search(client, q=name, limit=50)
    assert codes(body) == expected(objects, name, 50)
    assert [f["properties"]["kind"] for f in body["features"][:n]] == ["road"] * n
    both = search(client, q=name, layer="roads,buildings", limit=50)
    assert {f["properties"]["layer"] for f in both["features"]} == {"roads", "buildings"}


def test_ranking_order(client, objects):
    body = search(client, q="1", limit=50)  # every tier at once
    got = codes(body)
    assert len(got) == 50 and got == expected(objects, "1", 50)
    matched = {m for _, m in got}
    for q in ("jida", "b-00113", "JS-P00", "1F", "ws0000", "dadao"):
        got = codes(search(client, q=q, limit=50))
        assert got == expected(objects, q, 50), q
        matched |= {m for _, m in got}
    assert matched == set(FIELDS)


def test_sensors_and_nodes_are_found_terrain_is_not(client, api):
    code, device = fetch(api.model, "SELECT code, source_id FROM city_object WHERE kind = 'sensor' "
                                    "ORDER BY code LIMIT 1")[0]
    first = search(client, q=device)["features"][0]
    assert (first["id"], first["properties"]["matched"], first["properties"]["collection"]) == \
        (code, "source_id", "sensors")
    node = scalar(api.model, "SELECT code FROM city_object WHERE kind = 'water_node' ORDER BY code LIMIT 1")
    assert search(client, q=node)["features"][0]["properties"]["collection"] == "water-nodes"
    terrain = scalar(api.model, "SELECT code FROM city_object WHERE kind = 'terrain'")
    assert terrain not in [f["id"] for f in search(client, q=terrain, limit=50)["features"]]


@pytest.mark.parametrize("q", ["'", "x' OR '1'='1", "%", "Jida%", "Jida_Jie", "%_%", "\\",
                               "'; DROP TABLE city_object; --"])
def test_quotes_and_wildcards_are_data(client, api, objects, q):
    hits = [c for (c,) in fetch(api.model, """
        SELECT code FROM city_object WHERE kind <> 'terrain' AND (strpos(lower(code), lower(%s)) > 0
          OR strpos(lower(name), lower(%s)) > 0 OR strpos(lower(attributes->>'name'), lower(%s)) > 0
          OR strpos(lower(attributes->>'address'), lower(%s)) > 0 OR strpos(lower(source_id), lower(%s)) > 0)""",
                                       (q,) * 5)]
    body = search(client, q=q, limit=50)
    assert {c for c, _ in codes(body)} <= set(hits) and len(body["features"]) == min(50, len(hits))
    assert codes(body) == expected(objects, q, 50)


def test_underscore_is_literal(client, objects):
    body = search(client, q="_", limit=50)
    assert body["features"], "the IFC GlobalIds of the BIM objects hold underscores"
    for f in body["features"]:
        p = f["properties"]
        assert p["matched"] == "source_id" or "_" in (p[p["matched"]] or "")
    assert codes(body) == expected(objects, "_", 50)
    assert search(client, q="Jida_Jie")["features"] == []
    assert search(client, q="Jida Jie")["features"]


@pytest.mark.parametrize(("params", "word"), [
    ({}, "q"), ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * 201}, "q"), ({"q": "a\x00b"}, "q"),
    ({"q": "x", "limit": "0"}, "limit"), ({"q": "x", "limit": "51"}, "limit"), ({"q": "x", "limit": "ten"}, "limit"),
    ({"q": "x", "layer": "nope"}, "layer"), ({"q": "x", "layer": "terrain"}, "layer"),
])
def test_bad_parameters_are_400_problems(client, params, word):
    r = client.get("/search/text", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"].startswith(word)


def test_limit_and_200_characters(client):
    assert len(search(client, q="1", limit=1)["features"]) == 1
    assert len(search(client, q="1", limit=50)["features"]) == 50
    assert search(client, q=" " + "x" * 200 + " ")["features"] == []


def test_point_and_view_sphere(client, api):
    heights = json.loads((api.tiles / "tileset.json").read_text())["asset"]["extras"]["heights"]
    geoid = find_geoid()
    assert heights == geoid.description  # the geoid the tiles were placed with
    if geoid.grid is not None:
        shift = Transformer.from_pipeline(
            "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
            f"+step +proj=vgridshift +grids={geoid.grid} +multiplier=1 +step +proj=unitconvert +xy_in=rad +xy_out=deg")

        def undulation(lon: float, lat: float) -> float:
            return shift.transform(lon, lat, 0.0)[2]
    else:
        def undulation(lon: float, lat: float) -> float:
            return geoid.undulation
    picks = fetch(api.model, """
        SELECT DISTINCT ON (kind) code FROM city_object
        WHERE kind IN ('building', 'water_pipe', 'water_node', 'sensor', 'wall', 'road', 'tunnel', 'water')
        ORDER BY kind, code""")
    assert len(picks) == 8
    for (code,) in picks:
        f = search(client, q=code)["features"][0]
        assert f["id"] == code
        lon, lat, z = f["geometry"]["coordinates"]
        assert f["geometry"]["type"] == "Point"
        v = f["properties"]["view"]
        base, top, clon, clat, diag, inside, top_z, gtype = fetch(api.model, """
            SELECT ST_ZMin(bbox3d), ST_ZMax(bbox3d),
                   ST_X(ST_Transform(ST_SetSRID(ST_Centroid(ST_Force2D(bbox3d)), ST_SRID(geom)), 4326)),
                   ST_Y(ST_Transform(ST_SetSRID(ST_Centroid(ST_Force2D(bbox3d)), ST_SRID(geom)), 4326)),
                   ST_3DLength(bbox3d),
                   ST_DWithin(ST_Force2D(cim_footprint(geom)),
                              ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4326), ST_SRID(geom)), 0.01),
                   coalesce(top_z, ST_ZMax(geom)), GeometryType(geom)
            FROM city_object WHERE code = %s""", (lon, lat, code))[0]
        n = undulation(v["lon"], v["lat"])
        assert -10 < n < 0  # EGM96 around Zhuhai is about -4.4 m
        assert abs(v["height"] - ((base + top) / 2 + n)) < 0.5, (code, v, base, top, n)
        assert abs(v["lon"] - clon) < 1e-6 and abs(v["lat"] - clat) < 1e-6, code
        assert v["radius"] == pytest.approx(max(diag / 2, 1.0), rel=0.01, abs=0.01), code
        assert inside, f"{code}: its point is not on it"
        if gtype not in ("POINT", "LINESTRING"):
            assert z == pytest.approx(top_z, abs=0.001)  # orthometric, as /items gives heights
        assert np.isfinite([lon, lat, z]).all()
