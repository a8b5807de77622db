"""The storage layer: segments of protection groups, hosted by storage node processes."""
