"""Live IoT: sensors bound to objects, their latest state, the partitioned history and alarms.

- sensor_binding: which model objects a sensor (a city_object of kind 'sensor', layer of its import)
  observes; goes with the sensor object on re-import.
- sensor_state: one row per sensor code, never deleted by a re-import: the compact id history rows
  use, the latest reading and the sensor's status (unknown | ok | alarm | offline).
- observation: the history, partitioned by day on time (cim_observation_partitions creates them),
  unique on (sensor_id, time) so that a redelivered reading is ignored, BRIN on time.
- alarm: one row per alarm, at most one open (active or acknowledged) per sensor and rule;
  alarm_event: its lifecycle (raised, acknowledged, cleared) with who and the value.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FUNCTIONS = """
CREATE OR REPLACE FUNCTION cim_observation_partitions(t0 timestamptz, t1 timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  part text;
  made integer := 0;
BEGIN
  FOR d IN SELECT generate_series((t0 AT TIME ZONE 'UTC')::date, (t1 AT TIME ZONE 'UTC')::date, '1 day')::date
  LOOP
    part := 'observation_' || to_char(d, 'YYYYMMDD');
    IF to_regclass(part) IS NULL THEN
      BEGIN  -- another session may create it at the same moment: then it is there, which is all we want
        EXECUTE format('CREATE TABLE %I PARTITION OF observation FOR VALUES FROM (%L) TO (%L)', part,
                       d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
        made := made + 1;
      EXCEPTION WHEN duplicate_table OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
  RETURN made;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "sensor_binding",
        sa.Column("sensor_code", sa.Text, sa.ForeignKey("city_object.code", ondelete="CASCADE"), primary_key=True),
        sa.Column("object_code", sa.Text, sa.ForeignKey("code_registry.code"), primary_key=True),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default="0"),
    )
    op.create_index("sensor_binding_object_idx", "sensor_binding", ["object_code"])
    op.create_table(
        "sensor_state",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("code", sa.Text, sa.ForeignKey("code_registry.code"), nullable=False, unique=True),
        sa.Column("time", sa.DateTime(timezone=True)),
        sa.Column("value", sa.Float),
        sa.Column("received_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.Text, nullable=False, server_default="unknown"),
        sa.Column("severity", sa.SmallInteger, nullable=False, server_default="0"),
    )
    op.execute("""
        CREATE TABLE observation (
          sensor_id integer NOT NULL,
          time timestamptz NOT NULL,
          value double precision NOT NULL,
          received_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT observation_pkey PRIMARY KEY (sensor_id, time)
        ) PARTITION BY RANGE (time)
    """)
    op.execute("CREATE INDEX observation_time_brin ON observation USING brin (time)")
    op.create_table(
        "alarm",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("sensor_code", sa.Text, sa.ForeignKey("code_registry.code"), nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("limit_value", sa.Float),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("acknowledged_by", sa.Text),
        sa.Column("cleared_at", sa.DateTime(timezone=True)),
        sa.Column("clear_value", sa.Float),
        sa.CheckConstraint("state IN ('active', 'acknowledged', 'cleared')", name="alarm_state_check"),
    )
    op.create_index("alarm_open_uq", "alarm", ["sensor_code", "rule"], unique=True,
                    postgresql_where=sa.text("state <> 'cleared'"))
    op.create_index("alarm_sensor_idx", "alarm", ["sensor_code", "raised_at"])
    op.create_table(
        "alarm_event",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("alarm_id", sa.BigInteger, sa.ForeignKey("alarm.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_index("alarm_event_alarm_idx", "alarm_event", ["alarm_id"])
    op.execute(FUNCTIONS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS cim_observation_partitions(timestamptz, timestamptz)")
    for table in ("alarm_event", "alarm", "observation", "sensor_state", "sensor_binding"):
        op.drop_table(table)
