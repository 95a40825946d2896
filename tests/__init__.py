"""Palier's test suite, mirroring the domains of src/palier."""
