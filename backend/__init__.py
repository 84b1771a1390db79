"""Hybridex: a non-custodial hybrid DEX backend."""

__version__ = "0.1.0"
