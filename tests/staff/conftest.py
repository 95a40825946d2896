"""The service fixtures (programs whose ledger must verify clean) serve the staff tests too."""

from tests.services.conftest import new_program, program

__all__ = ["new_program", "program"]
