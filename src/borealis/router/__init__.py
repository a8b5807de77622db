"""Endpoints: the PostgreSQL-aware router that sends each new client connection to an
instance (the writer, a reader, a custom set) and holds it through a failover."""
