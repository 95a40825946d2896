"""What ``palier demo`` prints about the admin console, the dashboard and the till: where, and who signs in."""

from __future__ import annotations

from rich.table import Table

from palier.cli.common import console
from palier.demo.staff import DemoStaff

LANDS_ON = {"admin": "/console/dashboard", "marketer": "/console/dashboard", "store_staff": "/till"}


def show_staff(users: list[DemoStaff], *, base: str) -> None:
    console.print(f"\n[bold]Admin console[/bold]   {base}/console", soft_wrap=True)
    console.print(f"[bold]KPI dashboard[/bold]   {base}/console/dashboard", soft_wrap=True)
    console.print(f"[bold]Till[/bold]            {base}/till", soft_wrap=True)
    table = Table(title="Staff sign-in (new passwords on every run)", title_justify="left")
    for column in ("role", "e-mail", "password", "lands on"):
        table.add_column(column)
    for user in users:
        table.add_row(user.role, user.email, user.password, LANDS_ON[user.role])
    console.print(table)
