"""The city model in PostGIS: tables, migrations, unified codes, bulk writes, terrain."""
