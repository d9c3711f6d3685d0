"""The Alembic migrations and the GeoAlchemy2 table definitions describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import Geometry
from sqlalchemy import create_engine

from cim.model.schema import metadata


def srid_only(change) -> bool:
    """A geometry column whose only difference is the SRID: the schema leaves it to each model."""
    if not (isinstance(change, list) and change[0][0] == "modify_type"):
        return False
    _, _, _, _, _, reflected, declared = change[0]
    return (isinstance(declared, Geometry) and reflected.geometry_type == declared.geometry_type
            and declared.srid == -1)


def test_migrated_database_matches_schema_definitions(model):
    engine = create_engine(model.url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    ours = [d for d in diff if not srid_only(d)
            and not (d[0] == "remove_table" and d[1].name == "spatial_ref_sys")]  # PostGIS's own table
    assert ours == []
