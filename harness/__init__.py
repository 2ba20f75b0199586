"""Chaos and load testing harness for production design patterns."""

__version__ = "0.1.0"
