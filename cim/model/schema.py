"""Tables of a city model (GeoAlchemy2) for queries; a test keeps them equal to the migrations."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# SRID is fixed per model at `cim db init`; the columns carry it in the database (typmod).
GEOM_Z = Geometry(geometry_type="GEOMETRYZ", dimension=3, spatial_index=False)

model_info = Table(
    "model_info", metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("srid", Integer, nullable=False),
    Column("crs_name", Text, nullable=False),
    Column("area_code", Text, nullable=False),
    Column("vertical_datum", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

import_batch = Table(
    "import_batch", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("importer", Text, nullable=False),
    Column("layer", Text, nullable=False),
    Column("source_name", Text, nullable=False),
    Column("source_path", Text, nullable=False),
    Column("source_sha256", Text, nullable=False),
    Column("source_crs", Text),
    Column("started_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("object_count", Integer),
    Column("replaced_count", Integer),
    Column("summary", JSONB, nullable=False, server_default="{}"),
)

code_registry = Table(
    "code_registry", metadata,
    Column("code", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("layer", Text, nullable=False),
    Column("source_key", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    UniqueConstraint("layer", "source_key", name="code_registry_source_uq"),
)

code_serial = Table(
    "code_serial", metadata,
    Column("prefix", Text, primary_key=True),
    Column("last_serial", BigInteger, nullable=False),
)

city_object = Table(
    "city_object", metadata,
    Column("code", Text, ForeignKey("code_registry.code"), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("layer", Text, nullable=False),
    Column("name", Text),
    Column("attributes", JSONB, nullable=False, server_default="{}"),
    Column("geom", GEOM_Z, nullable=False),
    Column("base_z", Float),
    Column("top_z", Float),
    Column("lod", SmallInteger),
    Column("status", Text, nullable=False, server_default="existing"),
    Column("valid_from", DateTime(timezone=True)),
    Column("valid_to", DateTime(timezone=True)),
    Column("batch_id", BigInteger, ForeignKey("import_batch.id"), nullable=False),
    Column("source_file", Text, nullable=False),
    Column("source_id", Text),
    Column("parent_code", Text, ForeignKey("code_registry.code")),  # containing object (BIM hierarchy)
    # generated: the 3D extent from base_z to top_z, for n-D index queries (see the first migration)
    Column("bbox3d", Geometry(geometry_type="LINESTRINGZ", dimension=3, spatial_index=False)),
    Index("city_object_geom_gist", "geom", postgresql_using="gist"),
    Index("city_object_bbox3d_gist", "bbox3d", postgresql_using="gist",
          postgresql_ops={"bbox3d": "gist_geometry_ops_nd"}),
    Index("city_object_layer_idx", "layer", "kind"),
    Index("city_object_source_idx", "source_file", "layer"),
    Index("city_object_batch_idx", "batch_id"),
    Index("city_object_parent_idx", "parent_code"),
)

terrain_raster = Table(
    "terrain_raster", metadata,
    Column("code", Text, ForeignKey("city_object.code", ondelete="CASCADE"), primary_key=True),
    Column("geotiff", LargeBinary, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("cell_size", Float, nullable=False),
)

# Pipe networks (see docs/pipes.md): the geometry (LineStringZ centreline, PointZ) is in city_object.
pipe_node = Table(
    "pipe_node", metadata,
    Column("code", Text, ForeignKey("city_object.code", ondelete="CASCADE"), primary_key=True),
    Column("network", Text, nullable=False),
    Column("node_type", Text, nullable=False),  # junction, tee, valve, hydrant, meter, manhole, ... (NODE_TYPES)
    Column("ground_z", Float),  # ground (or manhole cover) elevation
    Column("depth", Float),  # manhole: cover to bottom; other nodes: cover to the pipe crown
    Column("bottom_z", Float),  # manhole bottom / lowest invert
    Column("operable", Boolean),  # valves: can it be closed
    Column("normal_state", Text),  # valves: open | closed
    Column("building_ref", Text),  # service connections: the building id as the source gives it
    Column("building_code", Text),  # ... resolved to the building's unified code when the model has it
    Index("pipe_node_network_idx", "network", "node_type"),
)

pipe_segment = Table(
    "pipe_segment", metadata,
    Column("code", Text, ForeignKey("city_object.code", ondelete="CASCADE"), primary_key=True),
    Column("network", Text, nullable=False),
    Column("link_type", Text, nullable=False, server_default="pipe"),  # pipe | pump | valve (EPANET links)
    Column("from_node", Text, nullable=False),  # pipe_node codes; drainage runs from upstream to downstream
    Column("to_node", Text, nullable=False),
    Column("shape", Text, nullable=False),  # circular | box
    Column("diameter_mm", Float),
    Column("width_mm", Float),
    Column("height_mm", Float),  # box height; for circular = diameter
    Column("material", Text),
    Column("pressure_class", Text),
    Column("subtype", Text),  # rain | sewage | combined | natural_gas | street_lighting | ...
    Column("year", Integer),
    Column("owner", Text),
    Column("ground_start", Float),
    Column("ground_end", Float),
    Column("depth_start", Float),  # cover: ground to pipe crown (top), metres
    Column("depth_end", Float),
    Column("invert_start", Float),  # pipe bottom elevation; centreline = invert + height / 2
    Column("invert_end", Float),
    Column("length_m", Float, nullable=False),  # 3D length of the centreline
    Column("slope", Float),  # (invert_start - invert_end) / 2D length: > 0 falls from start to end
    Index("pipe_segment_from_idx", "from_node"),
    Index("pipe_segment_to_idx", "to_node"),
    Index("pipe_segment_network_idx", "network"),
)

# Writes through the API (see cim/api/routes/features.py): lineage after import.
object_edit = Table(
    "object_edit", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("code", Text, ForeignKey("code_registry.code"), nullable=False),
    Column("edited_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("editor", Text, nullable=False),
    Column("before", JSONB, nullable=False),
    Column("after", JSONB, nullable=False),
    Index("object_edit_code_idx", "code"),
)


# Live IoT (see docs/iot.md and migration 0005): sensors are city objects of kind "sensor".
sensor_binding = Table(
    "sensor_binding", metadata,
    Column("sensor_code", Text, ForeignKey("city_object.code", ondelete="CASCADE"), primary_key=True),
    Column("object_code", Text, ForeignKey("code_registry.code"), primary_key=True),
    Column("position", SmallInteger, nullable=False, server_default="0"),
    Index("sensor_binding_object_idx", "object_code"),
)

sensor_state = Table(
    "sensor_state", metadata,
    Column("id", Integer, primary_key=True),  # identity: the compact key of observation rows
    Column("code", Text, ForeignKey("code_registry.code"), nullable=False, unique=True),
    Column("time", DateTime(timezone=True)),
    Column("value", Float),
    Column("received_at", DateTime(timezone=True)),
    Column("status", Text, nullable=False, server_default="unknown"),  # unknown | ok | alarm | offline
    Column("severity", SmallInteger, nullable=False, server_default="0"),  # of the worst open alarm
)

observation = Table(
    "observation", metadata,
    Column("sensor_id", Integer, primary_key=True),
    Column("time", DateTime(timezone=True), primary_key=True),
    Column("value", Float, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("observation_time_brin", "time", postgresql_using="brin"),
    postgresql_partition_by="RANGE (time)",
)

alarm = Table(
    "alarm", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("sensor_code", Text, ForeignKey("code_registry.code"), nullable=False),
    Column("rule", Text, nullable=False),  # HH | H | L | LL | ROC | STALE
    Column("severity", SmallInteger, nullable=False),
    Column("state", Text, nullable=False),  # active | acknowledged | cleared
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("value", Float),
    Column("limit_value", Float),
    Column("message", Text, nullable=False),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", Text),
    Column("cleared_at", DateTime(timezone=True)),
    Column("clear_value", Float),
    CheckConstraint("state IN ('active', 'acknowledged', 'cleared')", name="alarm_state_check"),
    Index("alarm_open_uq", "sensor_code", "rule", unique=True, postgresql_where=text("state <> 'cleared'")),
    Index("alarm_sensor_idx", "sensor_code", "raised_at"),
)

alarm_event = Table(
    "alarm_event", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alarm_id", BigInteger, ForeignKey("alarm.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("event", Text, nullable=False),  # raised | acknowledged | cleared
    Column("value", Float),
    Column("actor", Text, nullable=False),
    Column("note", Text),
    Index("alarm_event_alarm_idx", "alarm_id"),
)
