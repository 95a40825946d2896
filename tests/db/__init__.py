"""Tests of the database layer: migrations and engine helpers."""
