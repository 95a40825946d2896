"""Sweeps that run on a schedule: mature pending points, expire old lots."""
