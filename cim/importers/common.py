"""Helpers every importer shares: source checks, CRS transforms, EWKB, JSON attributes, progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from cim.crs import xyz_transformer
from cim.importers.errors import InputError


def check_source(path: Path) -> Path:
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    return path


def parse_crs(path: Path, value: object) -> CRS:
    try:
        crs = CRS.from_user_input(value)
    except CRSError:
        raise InputError(path, f"unknown CRS {value!r}") from None
    return crs


def transform_xy(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Geometries from src to dst (see cim.crs.xyz_transformer); Z kept where the source has it."""
    fn = xyz_transformer(src, dst)
    if fn is None:
        return geoms
    out = np.asarray(geoms, dtype=object).copy()
    has_z = shapely.has_z(out)
    for mask, include_z in ((has_z, True), (~has_z, False)):
        if mask.any():
            out[mask] = shapely.transform(out[mask], fn, include_z=include_z)
    bad = ~np.isfinite(shapely.bounds(out)).all(axis=1) & ~shapely.is_empty(out)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} geometries fall outside the area of use of the CRS transform")
    return out


def numbers(values: pd.Series) -> pd.Series:
    """Numbers from numeric or text fields ("DN300" → 300, "1.2m" → 1.2); NaN where none."""
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        values = values.astype("string").str.extract(r"(-?\d+(?:\.\d+)?)", expand=False)
    return pd.to_numeric(values, errors="coerce")


def set_z(geoms: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Give every vertex of each geometry its own Z (z holds one value per vertex, in order)."""
    geoms3 = shapely.force_3d(shapely.force_2d(geoms))
    coords = shapely.get_coordinates(geoms3, include_z=True)
    coords[:, 2] = z
    return shapely.set_coordinates(geoms3, coords)


def ewkb_hex(geoms: np.ndarray, srid: int) -> np.ndarray:
    return shapely.to_wkb(shapely.set_srid(geoms, srid), hex=True, output_dimension=3, include_srid=True)


def json_lines(frame: pd.DataFrame) -> list[str]:
    """One JSON object per row (NaN → null, datetimes ISO), serialised by pandas in C."""
    if frame.shape[1] == 0:
        return ["{}"] * len(frame)
    text = frame.reset_index(drop=True).to_json(orient="records", lines=True, date_format="iso",
                                                force_ascii=False)
    return text.splitlines()


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="progress.data.speed")


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar with counts and rate on stderr; yields advance(n)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
