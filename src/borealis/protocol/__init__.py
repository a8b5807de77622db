"""Client protocols of a database instance: PostgreSQL (``postgres``), later MySQL."""
