"""Concord: keeps a practice's records in agreement across its systems."""

__version__ = "0.1.0"
