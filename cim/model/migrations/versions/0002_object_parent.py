"""Object hierarchy: each city object may name the object that contains it (storey → building → site).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("city_object", sa.Column("parent_code", sa.Text, sa.ForeignKey("code_registry.code"), nullable=True))
    op.create_index("city_object_parent_idx", "city_object", ["parent_code"])


def downgrade() -> None:
    op.drop_index("city_object_parent_idx", table_name="city_object")
    op.drop_column("city_object", "parent_code")
