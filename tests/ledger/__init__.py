"""Tests of the ledger: posting, lots, verification."""
