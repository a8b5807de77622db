"""The volume client: the library inside database instances that speaks to storage."""
