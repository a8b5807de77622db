"""The fault-injection suite: workloads record histories, nemeses inject faults, checkers judge."""
