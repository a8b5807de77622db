"""Cluster control: today the local process supervisor; the control plane comes later."""
