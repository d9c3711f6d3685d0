"""Unified codes: readable area-kind-serial, unique, stable for the same source record, never reused."""

from __future__ import annotations

import re

import geopandas as gpd
import pandas as pd
import shapely

from cim.importers.gis import import_gis
from cim.model.kinds import abbr
from tests.helpers import fetch

CODE = re.compile(r"^440402-([A-Z]{2,3})-\d{7}$")


def codes_by_source(model) -> dict[str, str]:
    return dict(fetch(model, "SELECT source_id, code FROM city_object WHERE layer = 'b'"))


def test_sample_codes_are_readable_and_unique(sample_model):
    rows = fetch(sample_model, "SELECT code, kind FROM city_object")
    assert all(CODE.match(code) and CODE.match(code).group(1) == abbr(kind) for code, kind in rows)
    assert len({c for c, _ in rows}) == len(rows)
    assert {c.split("-")[1] for c, k in rows if k == "building"} == {"BLD"}
    assert {abbr(k) for _, k in rows} >= {"BLD", "RD", "WTR", "TER", "WAL", "BSY", "PSG"}


def test_codes_survive_edits_and_are_never_reused(model, sample_dir, tmp_path):
    src = gpd.read_file(sample_dir / "district.gpkg", layer="buildings").iloc[:30]
    v1 = tmp_path / "v1" / "blocks.gpkg"
    v1.parent.mkdir()
    src.to_file(v1, layer="blocks")
    import_gis(model, v1, "b")
    first = codes_by_source(model)
    assert len(first) == 30

    # The surveyor's next delivery: one building demolished, one reshaped, one new (same file name).
    gone, reshaped = src.bldg_code.iloc[0], src.bldg_code.iloc[1]
    v2 = src.iloc[1:].copy()
    v2.loc[v2.index[0], "geometry"] = shapely.affinity.scale(v2.geometry.iloc[0], 0.8, 0.8)
    new = src.iloc[[5]].copy()
    new["bldg_code"] = "NEW-1"
    new["geometry"] = new.geometry.translate(0, 3000)
    v2 = gpd.GeoDataFrame(pd.concat([v2, new]), crs=src.crs)
    path2 = tmp_path / "v2" / "blocks.gpkg"
    path2.parent.mkdir()
    v2.to_file(path2, layer="blocks")
    done = import_gis(model, path2, "b")
    assert done.result.replaced == 30 and done.result.written == 30 and done.result.new_codes == 1
    second = codes_by_source(model)
    assert gone not in second
    assert second[reshaped] == first[reshaped]
    assert {k: v for k, v in second.items() if k != "NEW-1"} == {k: v for k, v in first.items() if k != gone}
    serial = lambda code: int(code.rsplit("-", 1)[1])  # noqa: E731
    assert serial(second["NEW-1"]) == max(serial(c) for c in first.values()) + 1

    # Bringing the demolished one back gives it its old code, not a new one.
    import_gis(model, v1, "b")
    assert codes_by_source(model)[gone] == first[gone]
