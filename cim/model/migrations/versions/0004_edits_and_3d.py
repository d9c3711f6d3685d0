"""Edits made through the API (lineage after import), and the SQL functions of 3D queries.

- object_edit: one row per accepted write (who, when, the properties before and after).
- cim_footprint(g): a 2D-testable geometry of any object (TINs and polyhedral surfaces, which GEOS cannot
  test, become the convex hull of their vertices).
- cim_simple(g): the geometry in Simple Features types for GeoJSON and GDAL (TINs and polyhedral surfaces
  as MultiPolygonZ).
- cim_prism_shell(g, base, top): the closed shell (floor, roof, walls) of an LOD1 block.
- cim_3d_distance(g, base, top, lod, radius, q): 3D distance from an object's solid to a query geometry q
  (a point, a line, a surface, or a box as a closed POLYHEDRALSURFACE), 0 when they meet. LOD1 blocks count
  as solids from base to top, pipes by their outer surface (centreline distance minus the radius), the
  boxes of BIM storeys, buildings and sites as solids, other surfaces as surfaces.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FUNCTIONS = """
CREATE OR REPLACE FUNCTION cim_footprint(g geometry) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN GeometryType(g) IN ('TIN', 'POLYHEDRALSURFACE', 'TRIANGLE')
              THEN ST_ConvexHull(ST_Points(g)) ELSE g END
$$;

CREATE OR REPLACE FUNCTION cim_simple(g geometry) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN GeometryType(g) IN ('TIN', 'POLYHEDRALSURFACE', 'TRIANGLE')
              THEN (SELECT ST_Collect(CASE WHEN GeometryType(d.geom) = 'TRIANGLE'
                                          THEN ST_MakePolygon(ST_ExteriorRing(d.geom)) ELSE d.geom END)
                    FROM ST_Dump(g) d)
              ELSE g END
$$;

CREATE OR REPLACE FUNCTION cim_is_prism(g geometry, base float8, top float8, lod integer) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT GeometryType(g) IN ('POLYGON', 'MULTIPOLYGON') AND top > base AND coalesce(lod, 1) >= 1
$$;

CREATE OR REPLACE FUNCTION cim_prism_shell(g geometry, base float8, top float8) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ST_Collect(ARRAY[ST_Force3DZ(ST_Force2D(g), base), ST_Force3DZ(ST_Force2D(g), top)] || ARRAY(
    SELECT ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[
             ST_MakePoint(ST_X(e.a), ST_Y(e.a), base), ST_MakePoint(ST_X(e.b), ST_Y(e.b), base),
             ST_MakePoint(ST_X(e.b), ST_Y(e.b), top), ST_MakePoint(ST_X(e.a), ST_Y(e.a), top),
             ST_MakePoint(ST_X(e.a), ST_Y(e.a), base)])), ST_SRID(g))
    FROM (SELECT ST_StartPoint(s.geom) AS a, ST_EndPoint(s.geom) AS b
          FROM ST_DumpSegments(ST_Boundary(ST_Force2D(g))) s) e))
$$;

CREATE OR REPLACE FUNCTION cim_first_point(q geometry) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT d.geom FROM ST_DumpPoints(q) d LIMIT 1
$$;

CREATE OR REPLACE FUNCTION cim_3d_distance(g geometry, base float8, top float8, lod integer, radius float8,
                                           q geometry) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT greatest(0.0, CASE
    WHEN GeometryType(q) = 'POLYHEDRALSURFACE'
         AND ST_XMin(g) >= ST_XMin(q) AND ST_XMax(g) <= ST_XMax(q)
         AND ST_YMin(g) >= ST_YMin(q) AND ST_YMax(g) <= ST_YMax(q)
         AND coalesce(base, ST_ZMin(g)) >= ST_ZMin(q) AND coalesce(top, ST_ZMax(g)) <= ST_ZMax(q)
      THEN 0.0  -- the object lies inside the box
    WHEN GeometryType(g) = 'POLYHEDRALSURFACE' AND ST_NumPatches(g) = 6 AND ST_IsClosed(g)
         AND ST_X(cim_first_point(q)) BETWEEN ST_XMin(g) AND ST_XMax(g)
         AND ST_Y(cim_first_point(q)) BETWEEN ST_YMin(g) AND ST_YMax(g)
         AND ST_Z(cim_first_point(q)) BETWEEN ST_ZMin(g) AND ST_ZMax(g)
      THEN 0.0  -- q starts inside a box-shaped volume (a BIM storey, building or site)
    WHEN cim_is_prism(g, base, top, lod) THEN CASE
      WHEN ST_Intersects(ST_Force2D(g), ST_Force2D(cim_first_point(q)))
           AND ST_Z(cim_first_point(q)) BETWEEN base AND top
        THEN 0.0  -- q starts inside the block
      ELSE ST_3DDistance(cim_prism_shell(g, base, top), q) END
    ELSE ST_3DDistance(g, q) END - coalesce(radius, 0.0))
$$;
"""


def upgrade() -> None:
    op.create_table(
        "object_edit",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("code", sa.Text, sa.ForeignKey("code_registry.code"), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("editor", sa.Text, nullable=False),
        sa.Column("before", JSONB, nullable=False),
        sa.Column("after", JSONB, nullable=False),
    )
    op.create_index("object_edit_code_idx", "object_edit", ["code"])
    op.execute(FUNCTIONS)


def downgrade() -> None:
    for fn in ("cim_3d_distance(geometry, float8, float8, integer, float8, geometry)", "cim_first_point(geometry)",
               "cim_prism_shell(geometry, float8, float8)", "cim_is_prism(geometry, float8, float8, integer)",
               "cim_simple(geometry)", "cim_footprint(geometry)"):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.drop_table("object_edit")
