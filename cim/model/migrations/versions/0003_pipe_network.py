"""Pipe networks: typed attributes and topology of pipe segments and nodes (their geometry is in city_object).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _code() -> sa.Column:
    return sa.Column("code", sa.Text, sa.ForeignKey("city_object.code", ondelete="CASCADE"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "pipe_node",
        _code(),
        sa.Column("network", sa.Text, nullable=False),
        sa.Column("node_type", sa.Text, nullable=False),
        sa.Column("ground_z", sa.Float),
        sa.Column("depth", sa.Float),
        sa.Column("bottom_z", sa.Float),
        sa.Column("operable", sa.Boolean),
        sa.Column("normal_state", sa.Text),
        sa.Column("building_ref", sa.Text),
        sa.Column("building_code", sa.Text),
    )
    op.create_table(
        "pipe_segment",
        _code(),
        sa.Column("network", sa.Text, nullable=False),
        sa.Column("link_type", sa.Text, nullable=False, server_default="pipe"),
        sa.Column("from_node", sa.Text, nullable=False),
        sa.Column("to_node", sa.Text, nullable=False),
        sa.Column("shape", sa.Text, nullable=False),
        sa.Column("diameter_mm", sa.Float),
        sa.Column("width_mm", sa.Float),
        sa.Column("height_mm", sa.Float),
        sa.Column("material", sa.Text),
        sa.Column("pressure_class", sa.Text),
        sa.Column("subtype", sa.Text),
        sa.Column("year", sa.Integer),
        sa.Column("owner", sa.Text),
        sa.Column("ground_start", sa.Float),
        sa.Column("ground_end", sa.Float),
        sa.Column("depth_start", sa.Float),
        sa.Column("depth_end", sa.Float),
        sa.Column("invert_start", sa.Float),
        sa.Column("invert_end", sa.Float),
        sa.Column("length_m", sa.Float, nullable=False),
        sa.Column("slope", sa.Float),
    )
    op.create_index("pipe_segment_from_idx", "pipe_segment", ["from_node"])
    op.create_index("pipe_segment_to_idx", "pipe_segment", ["to_node"])
    op.create_index("pipe_segment_network_idx", "pipe_segment", ["network"])
    op.create_index("pipe_node_network_idx", "pipe_node", ["network", "node_type"])


def downgrade() -> None:
    op.drop_table("pipe_segment")
    op.drop_table("pipe_node")
