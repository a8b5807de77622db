"""The database instance process: the engine, its redo stream and its control interface."""
