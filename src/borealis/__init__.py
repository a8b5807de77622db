"""Borealis: an Aurora-style database whose log is the database.

Storage (``borealis.storage``) is a quorum-replicated, log-structured volume; the volume client
(``borealis.volume``) runs inside database instances and turns page writes into redo records.
Protocol logic is written as pure state machines so that the deterministic simulator
(``borealis.sim``) can drive the same code that runs in the real processes.
"""

__version__ = "0.1.0"
