"""City objects, unified codes, import batches, terrain rasters.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import context, op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    srid = int(context.config.attributes["srid"])
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "model_info",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("srid", sa.Integer, nullable=False),
        sa.Column("crs_name", sa.Text, nullable=False),
        sa.Column("area_code", sa.Text, nullable=False),
        sa.Column("vertical_datum", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("id = 1", name="model_info_single_row"),
    )
    op.create_table(
        "import_batch",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("importer", sa.Text, nullable=False),
        sa.Column("layer", sa.Text, nullable=False),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("source_sha256", sa.Text, nullable=False),
        sa.Column("source_crs", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("object_count", sa.Integer),
        sa.Column("replaced_count", sa.Integer),
        sa.Column("summary", JSONB, nullable=False, server_default="{}"),
    )
    op.create_table(
        "code_registry",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("layer", sa.Text, nullable=False),
        sa.Column("source_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("layer", "source_key", name="code_registry_source_uq"),
    )
    op.create_table(
        "code_serial",
        sa.Column("prefix", sa.Text, primary_key=True),
        sa.Column("last_serial", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "city_object",
        sa.Column("code", sa.Text, sa.ForeignKey("code_registry.code"), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("layer", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("attributes", JSONB, nullable=False, server_default="{}"),
        sa.Column("geom", Geometry("GEOMETRYZ", srid=srid, dimension=3, spatial_index=False), nullable=False),
        sa.Column("base_z", sa.Float),
        sa.Column("top_z", sa.Float),
        sa.Column("lod", sa.SmallInteger),
        sa.Column("status", sa.Text, nullable=False, server_default="existing"),
        sa.Column("valid_from", sa.DateTime(timezone=True)),
        sa.Column("valid_to", sa.DateTime(timezone=True)),
        sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("import_batch.id"), nullable=False),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("source_id", sa.Text),
        sa.CheckConstraint(
            "status IN ('planned', 'under_construction', 'existing', 'demolished')", name="city_object_status"
        ),
        sa.CheckConstraint("valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from",
                           name="city_object_validity"),
    )
    # The object's 3D extent (base to top) as a 2-point line, so an n-D GiST index answers 3D box queries
    # for LOD1 blocks, whose stored geometry is the footprint at base height.
    op.execute(f"""
        ALTER TABLE city_object ADD COLUMN bbox3d geometry(LineStringZ, {srid}) GENERATED ALWAYS AS (
          ST_SetSRID(ST_MakeLine(
            ST_MakePoint(ST_XMin(geom), ST_YMin(geom), COALESCE(base_z, ST_ZMin(geom))),
            ST_MakePoint(ST_XMax(geom), ST_YMax(geom), COALESCE(top_z, ST_ZMax(geom)))), {srid})
        ) STORED
    """)
    op.execute("CREATE INDEX city_object_geom_gist ON city_object USING gist (geom)")
    op.execute("CREATE INDEX city_object_bbox3d_gist ON city_object USING gist (bbox3d gist_geometry_ops_nd)")
    op.create_index("city_object_layer_idx", "city_object", ["layer", "kind"])
    op.create_index("city_object_source_idx", "city_object", ["source_file", "layer"])
    op.create_index("city_object_batch_idx", "city_object", ["batch_id"])
    op.create_table(
        "terrain_raster",
        sa.Column("code", sa.Text, sa.ForeignKey("city_object.code", ondelete="CASCADE"), primary_key=True),
        sa.Column("geotiff", sa.LargeBinary, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("cell_size", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("terrain_raster", "city_object", "code_serial", "code_registry", "import_batch", "model_info"):
        op.drop_table(table)
