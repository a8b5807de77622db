"""The ``borealis`` command: one module per subcommand over the library."""
