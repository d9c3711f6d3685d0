"""Writes need an API key (only digests are configured), edits are checked and logged, reads can be closed,
request sizes are bounded, and injection attempts in every parameter change nothing and leak nothing."""

from __future__ import annotations

import pytest

from cim.api.security import digest
from tests.api.conftest import API_KEY
from tests.helpers import fetch, scalar

KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def small_model(server, sample_dir):
    """Terrain, buildings and the water network: a model these tests may change."""
    from cim.db.server import drop_database
    from cim.importers.dem import import_dem
    from cim.importers.gis import import_gis
    from cim.importers.pipes.gis import import_pipes
    from tests.conftest import _new_model

    m = _new_model()
    import_dem(m, sample_dir / "dem.tif")
    import_gis(m, sample_dir / "district.gpkg", "buildings")
    import_pipes(m, sample_dir / "pipes.gpkg", "water")
    yield m
    drop_database(m.url)


@pytest.fixture(scope="module")
def writable(small_model, tmp_path_factory):
    from tests.api.conftest import Server, start_server, stop_server

    log = tmp_path_factory.mktemp("api-write") / "serve.log"
    proc, url = start_server(small_model, log.parent / "tiles", log)
    yield Server(url, small_model, log.parent / "tiles", log)
    stop_server(proc)


def _building(model) -> str:
    return scalar(model, "SELECT code FROM city_object WHERE layer = 'buildings' ORDER BY code LIMIT 1")


def test_write_needs_a_valid_key(writable):
    code = _building(writable.model)
    patch = {"properties": {"status": "demolished"}}
    with writable.client() as c:
        r = c.patch(f"/collections/buildings/items/{code}", json=patch)
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers
        r = c.patch(f"/collections/buildings/items/{code}", json=patch, headers={"X-API-Key": "wrong"})
        assert r.status_code == 403
        assert scalar(writable.model, "SELECT status FROM city_object WHERE code = %s", (code,)) == "existing"
        r = c.patch(f"/collections/buildings/items/{code}", json=patch,
                    headers={"Authorization": f"Bearer {API_KEY}"})
        assert r.status_code == 200, r.text
        assert r.json()["properties"]["status"] == "demolished"
    assert scalar(writable.model, "SELECT status FROM city_object WHERE code = %s", (code,)) == "demolished"


def test_edits_are_checked_logged_and_shown_in_the_lineage(writable):
    code = scalar(writable.model, "SELECT code FROM city_object WHERE layer = 'buildings' ORDER BY code "
                                  "OFFSET 1 LIMIT 1")
    before = fetch(writable.model, "SELECT status, name, attributes FROM city_object WHERE code = %s", (code,))
    with writable.client(headers=KEY) as c:
        for bad, why in [({"properties": {"kind": "road"}}, "cannot be edited"),
                         ({"properties": {"status": "gone"}}, "status"),
                         ({"properties": {"valid_from": "2030-01-01T00:00:00Z", "valid_to": "2020-01-01T00:00:00Z"}},
                          "city_object_validity"),
                         ({"properties": {"top_z": 3}}, "cannot be edited"),
                         ({"geometry": None}, "merge patch"),
                         ({"properties": {}}, "nothing to change")]:
            r = c.patch(f"/collections/buildings/items/{code}", json=bad)
            assert r.status_code == 400 and why in r.json()["detail"], (bad, r.text)
        assert fetch(writable.model, "SELECT status, name, attributes FROM city_object WHERE code = %s",
                     (code,)) == before
        r = c.patch(f"/collections/buildings/items/{code}",
                    json={"properties": {"name": "Old cinema", "use": "cultural", "height_rule": None}})
        assert r.status_code == 200, r.text
        props = r.json()["properties"]
        assert props["name"] == "Old cinema" and props["use"] == "cultural" and "height_rule" not in props
        detail = c.get(f"/objects/{code}").json()
    (edit,) = detail["lineage"]["edits"]
    assert edit["editor"] == digest(API_KEY)[:12]
    assert edit["before"]["use"] == before[0][2]["use"] and edit["after"]["name"] == "Old cinema"


def test_closing_a_valve_changes_the_next_isolation(writable):
    with writable.client(headers=KEY) as c:
        first = c.get("/analysis/isolation", params={"target": "JS000100", "plan-b": "false"}).json()
        valve = first["highlight"]["valve_to_close"][0]
        r = c.patch(f"/collections/water-nodes/items/{valve}", json={"properties": {"normal_state": "closed"}})
        assert r.status_code == 200, r.text
        assert r.json()["properties"]["normal_state"] == "closed"
        again = c.get("/analysis/isolation", params={"target": "JS000100", "plan-b": "false"}).json()
    assert valve in again["highlight"]["valve_closed"] and valve not in again["highlight"]["valve_to_close"]


def test_reads_can_require_a_key(make_api, small_model):
    closed = make_api(small_model, CIM_API_PUBLIC_READ="false")
    with closed.client() as c:
        r = c.get("/collections")
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
        assert c.get("/collections", headers=KEY).status_code == 200


def test_writes_are_off_without_configured_keys(make_api, small_model):
    server = make_api(small_model, CIM_API_KEYS="")
    with server.client() as c:
        r = c.patch(f"/collections/buildings/items/{_building(small_model)}", json={"properties": {"name": "x"}},
                    headers=KEY)
    assert r.status_code == 403 and "no API key" in r.json()["detail"]


def test_request_size_is_limited(writable):
    code = _building(writable.model)
    huge = {"properties": {"note": "x" * 2_000_000}}
    with writable.client(headers=KEY) as c:
        r = c.patch(f"/collections/buildings/items/{code}", json=huge)
        assert r.status_code == 413
        pit = {"polygon": {"type": "Polygon", "coordinates": [[[0, 0]] * 200_000]}, "depth": 2}
        assert c.post("/analysis/excavation", json=pit).status_code == 413


INJECTIONS = [
    "'; DROP TABLE city_object; --",
    "1) OR 1=1 --",
    "x' OR '1'='1",
    "$$; SELECT pg_sleep(10); $$",
    "\\x00\\u0000",
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
    "name; DELETE FROM code_registry",
    "geom) FROM city_object; --",
]
TEXT_PARAMS = {
    "/collections/buildings/items": ["bbox", "bbox-crs", "crs", "datetime", "properties", "sortby", "filter",
                                     "filter-lang", "filter-crs", "limit", "offset", "use", "f"],
    "/search/near": ["point", "line", "distance", "geom-crs", "collections", "properties"],
    "/search/beneath": ["code", "footprint", "below", "collections"],
    "/search/box": ["bbox", "bbox-crs", "collections"],
    "/search/text": ["q", "limit", "layer"],
    "/analysis/isolation": ["target", "at", "failed", "layer", "crs"],
    "/analysis/trace": ["start", "kind", "layer"],
    "/analysis/profile": ["line", "layers", "step"],
    "/analysis/clearance": ["layers"],
}


def test_injection_attempts_change_nothing(writable):
    tables = "SELECT (SELECT count(*) FROM city_object), (SELECT count(*) FROM code_registry), " \
             "(SELECT count(*) FROM pipe_segment)"
    before = fetch(writable.model, tables)
    seen = set()
    with writable.client() as c:
        for path, names in TEXT_PARAMS.items():
            for name in names:
                for payload in INJECTIONS:
                    r = c.get(path, params={name: payload})
                    seen.add(r.status_code)
                    assert r.status_code < 500, (path, name, payload, r.text)
                    assert "DROP TABLE" not in r.text or r.status_code in (400, 404)  # echoed in the error only
        for payload in INJECTIONS:
            for path in (f"/collections/{payload}/items", f"/objects/{payload}",
                         f"/collections/buildings/items/{payload}", f"/tiles/{payload}"):
                r = c.get(path)
                assert r.status_code in (400, 404), (path, r.status_code, r.text)
        # a quote inside a CQL2 string is data, not SQL
        r = c.get("/collections/buildings/items", params={"filter": "use = 'x'' OR ''1''=''1'"})
        assert r.status_code == 200 and r.json()["numberMatched"] == 0
        r = c.get("/collections/buildings/items", params={"use": "x' OR '1'='1"})
        assert r.status_code == 200 and r.json()["numberMatched"] == 0
    assert fetch(writable.model, tables) == before
    assert seen <= {200, 400, 404}
