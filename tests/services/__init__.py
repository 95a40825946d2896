"""Service-level tests: programs, members, purchases, returns and adjustments on both engines."""
