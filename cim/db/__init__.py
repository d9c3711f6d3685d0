"""The database server: a project-local PostgreSQL+PostGIS cluster or the one in CIM_DATABASE_URL."""
