"""Which source field feeds which model attribute: documented defaults, overridable by a mapping file."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cim.importers.common import check_source
from cim.importers.errors import InputError

# Model attribute → source field names tried in order (case-insensitive). See docs/importing.md.
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("bldg_code", "building_code", "code", "uid", "uuid", "gml_id", "osm_id", "@id", "id", "fid",
           "objectid", "road_id"),
    "name": ("name", "bldg_name", "mc", "名称"),
    "height": ("height", "measuredheight", "bldg_height", "building_height", "height_m", "h", "gd", "高度"),
    "floors": ("floors", "storeys", "stories", "building:levels", "levels", "num_floors", "cs", "层数"),
    "use": ("use", "usage", "function", "building", "landuse", "yt", "用途"),
    "year": ("year", "year_built", "yearofconstruction", "construction_year", "start_date", "nd", "建成年代"),
    "status": ("status", "lifecycle", "zt"),
}
TARGETS = tuple(DEFAULT_FIELDS)

STATUS_WORDS = {
    "existing": "existing", "built": "existing", "现状": "existing", "planned": "planned", "规划": "planned",
    "under_construction": "under_construction", "construction": "under_construction", "在建": "under_construction",
    "demolished": "demolished", "拆除": "demolished",
    # IFC's Pset_*Common.Status words
    "new": "planned", "demolish": "demolished", "temporary": "existing",
}


@dataclass
class Mapping:
    fields: dict[str, str] = field(default_factory=dict)  # target → source field (resolved)
    options: dict = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)  # source fields named by a mapping file


def read_mapping_file(path: Path) -> dict:
    """A TOML (.toml) or JSON mapping file as a dict of tables."""
    check_source(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a valid mapping file: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(path, "a mapping file holds tables such as [fields] and [options]")
    return data


def field_table(data: dict, table: str, path: Path, targets: tuple[str, ...]) -> dict[str, str]:
    """A [table] of target = "source field" pairs, checked against the known targets."""
    fields = data.get(table, {})
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise InputError(path, f"[{table}] must map model attributes to source field names (strings)")
    unknown = set(fields) - set(targets)
    if unknown:
        raise InputError(path, f"unknown model attribute(s) {sorted(unknown)} in [{table}]; "
                               f"known: {', '.join(targets)}")
    return fields


def load_mapping_file(path: Path) -> dict:
    data = read_mapping_file(path)
    field_table(data, "fields", path, TARGETS)
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise InputError(path, "[options] must be a table (kind, storey_height, default_height)")
    unknown = set(options) - {"kind", "storey_height", "default_height"}
    if unknown:
        raise InputError(path, f"unknown option(s) {sorted(unknown)}; known: kind, storey_height, default_height")
    return data


def match_fields(columns: list[str], defaults: dict[str, tuple[str, ...]], explicit: dict[str, str], source: Path,
                 mapping_file: Path | None) -> dict[str, str]:
    """Target → source field: the explicitly mapped one (which must exist; "" = unmapped), else the first
    default name present (case-insensitive)."""
    by_lower = {c.lower(): c for c in columns}
    resolved: dict[str, str] = {}
    for target, candidates in defaults.items():
        if target in explicit:
            name = explicit[target]
            if name == "":
                continue  # explicitly unmapped
            if name not in columns and name.lower() not in by_lower:
                raise InputError(
                    mapping_file or source,
                    f"field {name!r} (mapped to {target}) is not in {source.name}; "
                    f"available: {', '.join(columns) or 'none'}",
                )
            resolved[target] = name if name in columns else by_lower[name.lower()]
            continue
        for candidate in candidates:
            if candidate.lower() in by_lower:
                resolved[target] = by_lower[candidate.lower()]
                break
    return resolved


def resolve(columns: list[str], source: Path, mapping_file: Path | None = None) -> Mapping:
    """Match model attributes to this layer's fields; an explicitly mapped field must exist."""
    explicit: dict[str, str] = {}
    options: dict = {}
    if mapping_file is not None:
        data = load_mapping_file(mapping_file)
        explicit = data.get("fields", {})
        options = data.get("options", {})
    resolved = match_fields(columns, DEFAULT_FIELDS, explicit, source, mapping_file)
    return Mapping(resolved, options, {v for k, v in resolved.items() if k in explicit})
