"""DuckDB: the source of truth. All SQL lives in this package."""
