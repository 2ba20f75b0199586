"""Platforms that run the target and act on its instances."""
