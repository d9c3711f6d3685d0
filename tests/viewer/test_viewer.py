"""The viewer in a real headless Chromium over `cim serve` and the whole sample: it loads with no errors and no
request leaving the machine, clicks pick the right objects, live alarms recolour them, the pipe tools highlight
what the analyses find, and search flies to objects. One page for the module (loading it takes a while on
SwiftShader); each test starts from the select tool with nothing selected. Screenshots: tests/artifacts/viewer/."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pyproj import Transformer

from cim.analysis.isolation import isolate, valve_segments
from cim.analysis.network import load_graph
from tests.api.conftest import API_KEY
from tests.helpers import fetch
from tests.viewer.browser import Browser

WIDTH, HEIGHT = 1280, 800
TO_LONLAT = Transformer.from_crs(4547, 4326, always_xy=True)
RED, ORANGE, GREEN = "#d7191c", "#fd8d3c", "#66bd63"  # paint.js LIVE_COLORS 3, 2, ok
VALVE = "#e6194b"  # paint.js ROLE_COLORS.valve_to_close
SELECTED = "#ffd700"


@pytest.fixture(scope="module")
def page(viewer_server, artifacts) -> Iterator[Browser]:
    printed = re.search(r"viewer: (http://\S+)", viewer_server.log.read_text())  # what `cim serve` tells the user
    assert printed and printed.group(1) == viewer_server.url + "/viewer/", viewer_server.log.read_text()
    with Browser.launch(width=WIDTH, height=HEIGHT, timeout=180, log_path=artifacts / "logs" / "viewer.log") as b:
        b.goto(printed.group(1))
        b.wait_for("window.cim !== undefined", timeout=180, polling=0.25)
        settle(b)
        yield b


@pytest.fixture
def fresh(page) -> Browser:
    """The page back to the select tool, nothing selected or highlighted, ground opaque, buildings shown."""
    page.evaluate("(cim.select(null), cim.tools.setTool('select'), cim.tools.clear(), "
                  "document.getElementById('underground').checked && document.getElementById('underground').click(),"
                  "true)")
    return page


@pytest.fixture
def api(viewer_server) -> Iterator[httpx.Client]:
    with viewer_server.client(headers={"X-API-Key": API_KEY}) as c:
        yield c


def settle(b: Browser, timeout: float = 180) -> None:
    """Wait until every shown tileset and the ground have loaded what the view needs."""
    b.evaluate("(cim.viewer.scene.requestRender(), new Promise((r) => setTimeout(r, 300)))")
    b.wait_for("cim.settled()", timeout=timeout, polling=0.25)


def look_down(b: Browser, lon: float, lat: float, z: float, radius: float = 16) -> None:
    """The camera straight above a point (API terms: orthometric height), then everything loaded."""
    b.evaluate("cim.look(arg[0], arg[1], arg[2], arg[3], {pitch: -Math.PI / 2, duration: 0})", [lon, lat, z, radius])
    settle(b)


def screen(b: Browser, lon: float, lat: float, z: float) -> tuple[float, float]:
    p = b.evaluate("cim.screenOf(arg[0], arg[1], arg[2])", [lon, lat, z])
    assert p and 0 < p["x"] < WIDTH and 0 < p["y"] < HEIGHT, p
    # the map there, not a panel over it
    assert b.evaluate("document.elementFromPoint(arg[0], arg[1]).tagName", [p["x"], p["y"]]) == "CANVAS", p
    return p["x"], p["y"]


def lonlat(x: float, y: float) -> tuple[float, float]:
    return TO_LONLAT.transform(x, y)


def test_loads_the_district_without_errors_or_outside_requests(page, viewer_server, artifacts):
    config = viewer_server.client().get("/viewer/config.json").json()
    loaded = page.evaluate("[...cim.layers.byId.keys()].sort()")
    assert loaded == sorted(layer["id"] for layer in config["layers"]) and len(loaded) >= 13
    assert page.evaluate("cim.layers.failed") == []
    assert page.count("#layer-list li") == len(loaded)
    # the ground: heights from the DEM and the model's own base map, the only imagery layer
    assert config["ground"] is not None
    assert page.evaluate("cim.viewer.imageryLayers.length") == 1
    assert page.evaluate("cim.viewer.scene.globe.terrainProvider instanceof Cesium.CustomHeightmapTerrainProvider")
    # drawn: features of the district are loaded and registered by code
    assert page.evaluate("cim.painter.features.size") > 500
    # framed: the view covers the model's centre and most of it
    w, s, e, n = config["home"]["rectangle"]
    view = page.evaluate("(() => { const r = cim.viewer.camera.computeViewRectangle(); "
                         "return [r.west, r.south, r.east, r.north].map(Cesium.Math.toDegrees); })()")
    assert view[0] <= (w + e) / 2 <= view[2] and view[1] <= (s + n) / 2 <= view[3]
    covered = (min(view[2], e) - max(view[0], w)) * (min(view[3], n) - max(view[1], s)) / ((e - w) * (n - s))
    assert covered > 0.6, covered
    page.screenshot(artifacts / "01_start.png")
    events = page.events()
    assert events["externalRequests"] == []
    assert events["consoleErrors"] == [] and events["pageErrors"] == []
    assert events["failedRequests"] == [] and events["badResponses"] == []
    assert page.evaluate("cim.errors") == []


def test_layer_panel_hides_and_fades_a_tileset(fresh):
    row = '#layer-list li[data-layer="buildings"]'
    fresh.click(f"{row} input[type=checkbox]")
    assert fresh.evaluate("cim.layers.byId.get('buildings').tileset.show") is False
    fresh.click(f"{row} input[type=checkbox]")
    assert fresh.evaluate("cim.layers.byId.get('buildings').tileset.show") is True
    fresh.evaluate(f"(() => {{ const r = document.querySelector('{row} input[type=range]'); r.value = 40; "
                   "r.dispatchEvent(new Event('input')); })()")
    alphas = fresh.evaluate("[...cim.painter.features.values()].flatMap((s) => [...s])"
                            ".filter((f) => f.tileset.cimLayer.id === 'buildings').map((f) => f.color.alpha)")
    assert alphas and all(abs(a - 0.4) < 1e-6 for a in alphas)
    fresh.evaluate(f"(() => {{ const r = document.querySelector('{row} input[type=range]'); r.value = 100; "
                   "r.dispatchEvent(new Event('input')); })()")


def test_click_picks_the_building_and_its_panel_tells_what_it_is(fresh, viewer_server, artifacts):
    code, x, y, top, source_id = fetch(
        viewer_server.model, "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), top_z, "
        "source_id FROM city_object WHERE layer = 'buildings' AND top_z - base_z > 30 ORDER BY code LIMIT 1")[0]
    lon, lat = lonlat(x, y)
    look_down(fresh, lon, lat, top)
    fresh.mouse("click", *screen(fresh, lon, lat, top))
    fresh.wait_for("document.getElementById('panel-code')?.textContent === arg", code, timeout=30)
    assert fresh.evaluate("cim.selected()") == code
    assert set(fresh.evaluate("cim.drawnColors(arg)", code)) == {SELECTED}
    text = fresh.text("#panel")
    assert "building" in text and "district.gpkg" in text and source_id in text  # kind, lineage
    assert "floors" in text and "use" in text  # attributes
    fresh.screenshot(artifacts / "02_building_picked.png")


def test_bim_element_panel_shows_its_property_sets(fresh):
    code = fresh.evaluate("fetch('/collections/bim/items?kind=wall&limit=1').then((r) => r.json())"
                          ".then((j) => j.features[0].id)")
    fresh.evaluate("cim.select(arg)", code)
    fresh.wait_for("document.getElementById('panel-code')?.textContent === arg", code, timeout=30)
    text = fresh.text("#panel")
    assert "BIM" in text and "Pset_" in text and "ifc" in text.lower()


def _manhole(model) -> tuple[str, str]:
    """MC-0001's sensor code and the manhole it watches."""
    return fetch(model, "SELECT s.code, b.object_code FROM city_object s JOIN sensor_binding b ON "
                        "b.sensor_code = s.code WHERE s.kind = 'sensor' AND s.source_id = 'MC-0001'")[0]


def test_simulated_alarm_turns_the_manhole_red_and_is_acknowledged(fresh, viewer_server, api, artifacts):
    sensor, manhole = _manhole(viewer_server.model)
    x, y, z = fetch(viewer_server.model, "SELECT ST_X(geom), ST_Y(geom), top_z FROM city_object WHERE code = %s",
                    (manhole,))[0]
    lon, lat = lonlat(x, y)
    look_down(fresh, lon, lat, z, 10)
    now = datetime.now(UTC)
    history = [{"sensor": sensor, "time": (now - timedelta(minutes=60 - i)).isoformat(), "value": 0.3 + 0.01 * i}
               for i in range(50)]
    assert api.post("/iot/observations", json=history).status_code == 200
    fresh.evaluate("cim.select(arg)", manhole)
    fresh.wait_for("document.querySelector('#panel-sensors svg.chart polyline')", timeout=30)
    points = fresh.evaluate("document.querySelector('#panel-sensors svg.chart polyline').getAttribute('points')")
    assert len(points.split()) >= 10  # 50 readings in 5-minute buckets
    fresh.evaluate("cim.select(null)")
    assert fresh.evaluate("cim.tint(arg)", manhole) == GREEN

    r = api.post("/iot/observations", json=[{"sensor": sensor, "time": now.isoformat(), "value": 25.0}])
    assert r.status_code == 200
    fresh.wait_for("cim.tint(arg) === '#d7191c'", manhole, timeout=10, polling=0.05)  # pushed, no reload
    settle(fresh)
    colors = fresh.evaluate("cim.drawnColors(arg)", manhole)
    assert colors and set(colors) == {RED}
    fresh.screenshot(artifacts / "03_alarm_red.png")

    # the panel lists the open alarms; acknowledging needs the key
    fresh.evaluate("cim.select(arg)", manhole)
    fresh.wait_for("document.querySelectorAll('#panel-alarms .alarm button.ack').length >= 2", timeout=30)
    alarm_id = int(fresh.evaluate("document.querySelector('#panel-alarms .alarm[data-alarm]').dataset.alarm"))
    fresh.evaluate("(() => { const k = document.getElementById('api-key'); k.value = arg; "
                   "k.dispatchEvent(new Event('change')); })()", API_KEY)
    fresh.click(f'#panel-alarms .alarm[data-alarm="{alarm_id}"] button.ack')
    fresh.wait_for("document.querySelector(`#panel-alarms .alarm[data-alarm='${arg}']`).classList.contains("
                   "'acknowledged')", alarm_id, timeout=30)
    assert api.get(f"/iot/alarms/{alarm_id}").json()["state"] == "acknowledged"
    fresh.screenshot(artifacts / "04_alarm_panel.png")

    # back under the limits (below h - deadband) and steady (the drop itself is a rate-of-change alarm): green
    # again without a reload
    steady = [{"sensor": sensor, "time": (now + timedelta(seconds=s)).isoformat(), "value": 3.0} for s in (1, 2)]
    assert api.post("/iot/observations", json=steady).status_code == 200
    fresh.wait_for("cim.painter.live.get(arg)?.severity === 0", manhole, timeout=10, polling=0.05)
    fresh.evaluate("cim.select(null)")
    assert set(fresh.evaluate("cim.drawnColors(arg)", manhole)) == {GREEN}


def _long_water_pipe(model) -> tuple[str, float, float, float, float]:
    """A long main (easy to click: DN 200 or more) and the middle of its axis, with the ground there."""
    return fetch(model, "SELECT o.code, ST_X(ST_LineInterpolatePoint(o.geom, 0.5)), "
                        "ST_Y(ST_LineInterpolatePoint(o.geom, 0.5)), ST_Z(ST_LineInterpolatePoint(o.geom, 0.5)), "
                        "(s.ground_start + s.ground_end) / 2 FROM city_object o JOIN pipe_segment s USING (code) "
                        "WHERE o.layer = 'water' AND s.diameter_mm >= 200 "
                        "ORDER BY ST_Length(o.geom) DESC, o.code LIMIT 1")[0]


def test_underground_view_and_burst_isolation_highlight_the_expected_valves(fresh, viewer_server, artifacts):
    # a main with a pressure or flow sensor on it: the sensor's point is drawn over the pipe, and the click on the
    # pipe there must still pick the pipe
    code, x, y, z = fetch(viewer_server.model, "SELECT o.code, ST_X(s.geom), ST_Y(s.geom), ST_Z(s.geom) "
                          "FROM city_object o JOIN sensor_binding b ON b.object_code = o.code JOIN city_object s ON "
                          "s.code = b.sensor_code JOIN pipe_segment p ON p.code = o.code WHERE o.layer = 'water' "
                          "AND ST_3DDistance(o.geom, s.geom) < 0.01 ORDER BY p.diameter_mm DESC, o.code LIMIT 1")[0]
    lon, lat = lonlat(x, y)
    expected = isolate(valve_segments(load_graph(viewer_server.model, "water")), code, (), False)
    assert expected.valves_to_close

    fresh.click("#underground")
    assert fresh.evaluate("cim.viewer.scene.globe.translucency.enabled") is True
    assert fresh.evaluate("cim.layers.byId.get('buildings').tileset.show") is False
    look_down(fresh, lon, lat, z, 10)
    fresh.screenshot(artifacts / "05_underground.png")

    fresh.click('#tools button[data-tool="isolation"]')
    at = screen(fresh, lon, lat, z)
    assert fresh.evaluate("cim.viewer.scene.pick(new Cesium.Cartesian2(arg[0], arg[1]))?.id?.sensor", at)
    fresh.mouse("click", *at)
    fresh.wait_for("cim.highlighted().valve_to_close", timeout=60)
    got = fresh.evaluate("cim.highlighted()")
    assert sorted(got["valve_to_close"]) == sorted(expected.valves_to_close)
    assert got["target"] == [code]
    assert sorted(got.get("affected_building", [])) == sorted(set(expected.buildings) - set(expected.valves_to_close))
    listed = fresh.evaluate("[...document.querySelectorAll('#tool-box [data-role=valve_to_close] a.code')]"
                            ".map((a) => a.dataset.code)")
    assert sorted(listed) == sorted(expected.valves_to_close)
    # the viewer frames the answer; the valves in view are drawn in the valve colour
    fresh.wait_for("!cim.viewer.camera._currentFlight", timeout=30)
    settle(fresh)
    drawn = {v: fresh.evaluate("cim.drawnColors(arg)", v) for v in expected.valves_to_close}
    assert any(drawn.values()), drawn
    assert all(set(c) == {VALVE} for c in drawn.values() if c), drawn
    fresh.screenshot(artifacts / "06_isolation.png")


def test_excavation_pit_finds_the_pipe_under_it(fresh, viewer_server, api, artifacts):
    code, x, y, z, ground = _long_water_pipe(viewer_server.model)
    lon, lat = lonlat(x, y)
    look_down(fresh, lon, lat, z, 12)
    fresh.click('#tools button[data-tool="excavation"]')
    fresh.fill("#pit-depth", "4")
    for dx, dy in ((-3, -3), (3, -3), (3, 3), (-3, 3)):
        lo, la = lonlat(x + dx, y + dy)
        fresh.mouse("click", *screen(fresh, lo, la, ground))
    fresh.click("#pit-finish")
    fresh.wait_for("cim.tools.answer && cim.highlighted().hit", timeout=60)
    assert code in fresh.evaluate("cim.highlighted().hit")
    ring = fresh.evaluate("cim.tools.points.map((p) => [p[0], p[1]])")
    direct = api.post("/analysis/excavation", json={"polygon": {"type": "Polygon", "coordinates": [ring + ring[:1]]},
                                                    "depth": 4, "margin": 1}).json()
    assert sorted(fresh.evaluate("cim.highlighted().hit")) == sorted(direct["highlight"]["hit"])
    fresh.screenshot(artifacts / "07_excavation.png")


def test_profile_of_a_cut_line_draws_the_pipes_it_crosses(fresh, viewer_server, api, artifacts):
    code, x, y, z, ground = _long_water_pipe(viewer_server.model)
    (x0, y0, x1, y1), = fetch(viewer_server.model, "SELECT ST_X(ST_StartPoint(geom)), ST_Y(ST_StartPoint(geom)), "
                                                   "ST_X(ST_EndPoint(geom)), ST_Y(ST_EndPoint(geom)) "
                                                   "FROM city_object WHERE code = %s", (code,))
    # a 16 m cut across the pipe's middle
    ux, uy = (x1 - x0), (y1 - y0)
    norm = math.hypot(ux, uy)
    nx, ny = -uy / norm * 8, ux / norm * 8
    look_down(fresh, *lonlat(x, y), z, 20)
    fresh.click('#tools button[data-tool="profile"]')
    for sx, sy in ((x - nx, y - ny), (x + nx, y + ny)):
        lo, la = lonlat(sx, sy)
        fresh.mouse("click", *screen(fresh, lo, la, ground))
    fresh.wait_for("document.querySelector('#tool-box svg.profile')", timeout=60)
    crossed = fresh.evaluate("cim.highlighted().crossed || []")
    assert code in crossed
    assert fresh.count("#tool-box svg.profile circle") == len(crossed)
    line = ",".join(f"{v:.8f}" for p in fresh.evaluate("cim.tools.points") for v in p[:2])
    direct = api.get("/analysis/profile", params={"line": line}).json()
    assert sorted(crossed) == sorted(direct["highlight"]["crossed"])
    fresh.screenshot(artifacts / "08_profile.png")


def test_search_by_name_flies_to_the_building(fresh, viewer_server, artifacts):
    code, name, x, y, top = fetch(
        viewer_server.model, "SELECT code, name, ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)), top_z "
        "FROM city_object WHERE layer = 'buildings' AND name IS NOT NULL ORDER BY code DESC LIMIT 1")[0]
    fresh.fill("#search-input", name)
    fresh.wait_for("document.querySelector('#search-results li[data-code]')", timeout=30)
    fresh.press("Enter", "#search-input")
    fresh.wait_for("cim.selected() === arg", code, timeout=30)
    fresh.wait_for("!cim.viewer.camera._currentFlight", timeout=30)
    lon, lat = lonlat(x, y)
    distance = fresh.evaluate("Cesium.Cartesian3.distance(cim.viewer.camera.positionWC, "
                              "Cesium.Cartesian3.fromDegrees(arg[0], arg[1], arg[2] + cim.config.geoid_height))",
                              [lon, lat, top])
    assert distance < 400, distance
    fresh.wait_for("document.getElementById('panel-code')?.textContent === arg", code, timeout=30)
    settle(fresh)
    fresh.screenshot(artifacts / "09_search.png")


def test_panel_close_and_escape_end_the_selection_and_the_tool(fresh, viewer_server):
    code = fetch(viewer_server.model, "SELECT code FROM city_object WHERE layer = 'roads' ORDER BY code LIMIT 1")[0][0]
    fresh.evaluate("cim.select(arg)", code)
    fresh.wait_for("document.getElementById('panel-code')?.textContent === arg", code, timeout=30)
    fresh.click("#panel-close")
    assert fresh.evaluate("cim.selected()") is None and not fresh.visible("#panel")
    fresh.click('#tools button[data-tool="profile"]')  # the button keeps the focus
    fresh.press("Escape")
    assert fresh.evaluate("cim.tools.tool") == "select"


def test_search_for_a_node_flies_underground_and_back_restores_the_layers(fresh, viewer_server):
    code = fetch(viewer_server.model, "SELECT code FROM city_object WHERE layer = 'water' AND kind = 'water_node' "
                                      "ORDER BY code LIMIT 1 OFFSET 99")[0][0]
    fresh.click('#layer-list li[data-layer="river"] input[type=checkbox]')  # the user hid the river
    fresh.fill("#search-input", code)
    fresh.wait_for("document.querySelector(`#search-results li[data-code='${arg}']`)", code, timeout=30)
    fresh.press("Enter", "#search-input")
    fresh.wait_for("cim.selected() === arg", code, timeout=30)
    assert fresh.evaluate("document.getElementById('underground').checked") is True
    assert fresh.evaluate("cim.viewer.scene.globe.translucency.enabled") is True
    fresh.click("#underground")
    shown = fresh.evaluate("Object.fromEntries([...cim.layers.byId].map(([k, v]) => [k, v.tileset.show]))")
    assert shown["buildings"] is True and shown["roads"] is True and shown["river"] is False
    fresh.click('#layer-list li[data-layer="river"] input[type=checkbox]')


def test_no_errors_after_all_the_interactions(page):
    events = page.events()
    assert events["externalRequests"] == []
    assert events["consoleErrors"] == [] and events["pageErrors"] == []
    assert events["failedRequests"] == [] and events["badResponses"] == []
