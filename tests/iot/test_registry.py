"""`cim import sensors`: codes, bindings, locations and rules; re-imports keep codes and history; bad files."""

from __future__ import annotations

import json
import time

import pytest

from cim.importers.errors import InputError
from cim.iot.registry import Registry, import_sensors
from tests.helpers import fetch, run_cim, scalar
from tests.iot.conftest import SENSORS_CSV, write_sensors


def test_sensors_are_city_objects_bound_to_the_model(iot_model):
    rows = fetch(iot_model, """
        SELECT o.source_id, o.code, o.attributes, array_agg(b.object_code ORDER BY b.position), s.status
        FROM city_object o JOIN sensor_binding b ON b.sensor_code = o.code JOIN sensor_state s ON s.code = o.code
        WHERE o.kind = 'sensor' GROUP BY o.source_id, o.code, o.attributes, s.status ORDER BY 1""")
    by_id = {r[0]: r for r in rows}
    assert sorted(by_id) == ["EN-1", "MC-1", "MC-2", "PP-1"]
    assert all(r[1].startswith("440402-SEN-") and r[4] == "unknown" for r in rows)
    pp = by_id["PP-1"]
    expected = [scalar(iot_model, "SELECT code FROM code_registry WHERE layer = %s AND source_key = %s", ref)
                for ref in (("drainage", "P:WS000001"), ("buildings", "440402-B-000001"))]
    assert pp[3] == expected
    assert pp[2]["sensor_kind"] == "pipe_pressure" and pp[2]["unit"] == "MPa" and pp[2]["property"] == "pressure"
    assert pp[2]["rules"] == {"ll": 0.15, "l": 0.2, "h": 0.6, "hh": 0.7, "deadband": 0.02, "roc": 0.3}


def test_a_sensor_without_location_sits_on_its_object(iot_model):
    # a manhole is a point: the sensor is exactly there
    dist = scalar(iot_model, """
        SELECT ST_3DDistance(s.geom, o.geom) FROM city_object s JOIN sensor_binding b ON b.sensor_code = s.code
        JOIN city_object o ON o.code = b.object_code WHERE s.source_id = 'MC-1'""")
    assert dist == pytest.approx(0, abs=1e-6)
    # on a building: inside its footprint, at its roof
    inside, z, top = fetch(iot_model, """
        SELECT ST_Intersects(ST_Force2D(s.geom), ST_Force2D(o.geom)), ST_Z(s.geom), o.top_z
        FROM city_object s JOIN sensor_binding b ON b.sensor_code = s.code
        JOIN city_object o ON o.code = b.object_code WHERE s.source_id = 'EN-1'""")[0]
    assert inside and z == pytest.approx(top)


def test_registry_view(iot_model):
    with iot_model.connect() as conn:
        registry = Registry.load(conn)
    mc = registry.by_ref["MC-1"]
    assert registry.by_ref[mc.code] is mc and registry.by_id[mc.state_id] is mc
    assert mc.layers == ("drainage",) and mc.rules.h == 5 and mc.stale_after == 15  # 3 intervals of 5 s
    assert registry.by_ref["EN-1"].stale_after == 30  # its own stale_s
    assert set(registry.by_ref["PP-1"].layers) == {"drainage", "buildings"}
    assert 113 < mc.lon < 114 and 22 < mc.lat < 23


def test_reimport_keeps_codes_and_states(iot_model, tmp_path):
    before = dict(fetch(iot_model, "SELECT source_id, code FROM city_object WHERE kind = 'sensor'"))
    states = scalar(iot_model, "SELECT count(*) FROM sensor_state")
    changed = SENSORS_CSV.replace("MC-2,cover 2,manhole_cover,drainage:N:WS-P000002,,,5,20",
                                  "MC-2,cover 2,manhole_cover,drainage:N:WS-P000003,,,6,20")
    import_sensors(iot_model, write_sensors(tmp_path / "sensors.csv", changed))
    after = dict(fetch(iot_model, "SELECT source_id, code FROM city_object WHERE kind = 'sensor'"))
    assert after == before and scalar(iot_model, "SELECT count(*) FROM sensor_state") == states
    rebound = scalar(iot_model, "SELECT r.source_key FROM sensor_binding b JOIN code_registry r "
                                "ON r.code = b.object_code WHERE b.sensor_code = %s", (before["MC-2"],))
    assert rebound == "N:WS-P000003"
    import_sensors(iot_model, write_sensors(tmp_path / "sensors.csv"))


BAD = {
    "no objects column": ("id,kind\nX-1,manhole_cover\n", "column 'objects' is missing"),
    "unknown object": ("id,kind,objects\nX-1,manhole_cover,drainage:N:NOPE\n", "record X-1: object 'drainage:N:NOPE'"),
    "empty objects": ("id,kind,objects\nX-1,manhole_cover,\n", "record X-1: objects is empty"),
    "duplicate id": ("id,kind,objects\nX-1,manhole_cover,buildings:440402-B-000001\n"
                     "X-1,manhole_cover,buildings:440402-B-000001\n", "record X-1: id appears twice"),
    "limits out of order": ("id,kind,objects,h,hh\nX-1,manhole_cover,buildings:440402-B-000001,9,5\n",
                            "record X-1: limits must rise"),
    "text limit": ("id,kind,objects,h\nX-1,manhole_cover,buildings:440402-B-000001,high\n",
                   "record X-1: h must be a number"),
    "unknown kind without unit": ("id,kind,objects\nX-1,radar,buildings:440402-B-000001\n",
                                  "record X-1: kind 'radar' is not a known kind"),
    "bad x": ("id,kind,objects,x,y\nX-1,manhole_cover,buildings:440402-B-000001,east,2463000\n",
              "x and y must be numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sensor_files_fail_in_one_line_and_change_nothing(iot_model, tmp_path, case):
    text, reason = BAD[case]
    path = write_sensors(tmp_path / "bad.csv", text)
    count = scalar(iot_model, "SELECT count(*) FROM city_object WHERE kind = 'sensor'")
    batches = scalar(iot_model, "SELECT count(*) FROM import_batch")
    with pytest.raises(InputError, match=reason.split(": ", 1)[-1].replace("(", r"\(")):
        import_sensors(iot_model, path)
    result = run_cim("import", "sensors", str(path), model=iot_model)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert scalar(iot_model, "SELECT count(*) FROM city_object WHERE kind = 'sensor'") == count
    assert scalar(iot_model, "SELECT count(*) FROM import_batch") == batches


def test_geojson_with_locations_and_a_line_refused(iot_model, tmp_path):
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.55, 22.27, 4.0]},
               "properties": {"id": "G-1", "kind": "water_level", "objects": ["buildings:440402-B-000003"],
                              "h": 3.5}}
    path = tmp_path / "g.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    import_sensors(iot_model, path, layer="gauges")
    x, y, z = fetch(iot_model, "SELECT ST_X(ST_Transform(geom, 4326)), ST_Y(ST_Transform(geom, 4326)), ST_Z(geom) "
                               "FROM city_object WHERE layer = 'gauges'")[0]
    assert (x, y, z) == (pytest.approx(113.55, abs=1e-9), pytest.approx(22.27, abs=1e-9), 4.0)
    feature["geometry"] = {"type": "LineString", "coordinates": [[113.55, 22.27], [113.56, 22.27]]}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(InputError, match="record G-1: a sensor's location must be a Point"):
        import_sensors(iot_model, path, layer="gauges")


def test_a_reserved_column_is_refused(iot_model, tmp_path):
    path = write_sensors(tmp_path / "r.csv", "id,kind,objects,rules\nX-1,manhole_cover,buildings:440402-B-000001,x\n")
    with pytest.raises(InputError, match="column 'rules' is a name cim keeps"):
        import_sensors(iot_model, path)


def test_sensors_left_out_of_a_reimport_lose_their_open_alarms(iot_model, tmp_path):
    from cim.config import settings
    from cim.iot.ingest import Ingest

    with iot_model.connect(autocommit=True) as conn:
        Ingest(conn, settings()).write(["MC-2"], [time.time()], [50.0])
    code = scalar(iot_model, "SELECT code FROM city_object WHERE source_id = 'MC-2'")
    assert scalar(iot_model, "SELECT count(*) FROM alarm WHERE sensor_code = %s AND state <> 'cleared'", (code,)) == 2
    without = "\n".join(line for line in SENSORS_CSV.splitlines() if not line.startswith("MC-2")) + "\n"
    import_sensors(iot_model, write_sensors(tmp_path / "sensors.csv", without))  # the same file, less MC-2
    assert scalar(iot_model, "SELECT count(*) FROM alarm WHERE sensor_code = %s AND state <> 'cleared'", (code,)) == 0
    assert fetch(iot_model, "SELECT DISTINCT e.actor, e.note FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
                            "WHERE a.sensor_code = %s AND e.event = 'cleared'", (code,)) == \
        [("import", "the sensor is no longer in the model")]
    import_sensors(iot_model, write_sensors(tmp_path / "sensors.csv"))
