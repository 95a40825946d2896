"""Earning rules as data: validated documents, compiled predicates, pure evaluation, versions and awards."""
