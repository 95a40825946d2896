"""Palier: an open-source loyalty engine (points, tiers, rewards) on every channel."""

__version__ = "0.1.0"
__all__ = ["__version__"]
