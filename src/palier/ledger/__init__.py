"""The points ledger: double entry, lots, holds; the only code that moves a balance."""

from palier.ledger.accounts import POINTS, member_account, program_account
from palier.ledger.post import Entry, Posting, post, write
from palier.ledger.verify import Violation, verify

__all__ = [
    "POINTS",
    "Entry",
    "Posting",
    "Violation",
    "member_account",
    "post",
    "program_account",
    "verify",
    "write",
]
