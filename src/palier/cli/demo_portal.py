"""What ``palier demo`` prints about the member portal and the how-it-works page: where, and how to sign in."""

from __future__ import annotations

import os

from sqlalchemy import select

from palier.cli.common import console
from palier.db import Database
from palier.demo import DemoInfo
from palier.members.tables import members


def demo_member_email(db: Database, info: DemoInfo) -> tuple[str, str] | None:
    """(member id, e-mail) of a sample member who has an e-mail, to sign in to the portal with."""
    with db.read() as conn:
        for member_id in info.sample_member_ids:
            email = conn.execute(select(members.c.email).where(members.c.id == member_id)).scalar()
            if email:
                return member_id, str(email)
    return None


def show_portal(db: Database, info: DemoInfo, *, base: str) -> None:
    """The portal and how-it-works URLs, the demo member's e-mail, and the portal-link call."""
    os.environ["PALIER_SHOW_SIGN_IN_CODES"] = "1"  # no mailer in the demo: the API served below prints codes
    portal = f"{base}/p/{info.program_id}"
    console.print(f"\n[bold]Member portal[/bold]   {portal}", soft_wrap=True)
    console.print(f"[bold]How it works[/bold]    {base}/how-it-works/{info.program_id}", soft_wrap=True)
    found = demo_member_email(db, info)
    if found is None:
        return
    member_id, email = found
    console.print(
        f"Sign in to the portal with [bold]{email}[/bold]: the one-time code is printed in this console "
        "(there is no mailer in the demo).",
        soft_wrap=True,
    )
    console.print("\n[bold]Or sign the member in from the merchant's site with a single-use link:[/bold]")
    console.print(
        f"curl -s -X POST -H 'Authorization: Bearer {info.pos_key}' {base}/v1/members/{member_id}/portal-link",
        soft_wrap=True,
        markup=False,
    )
    console.print('Open the url it returns: the page asks "Continue as …?", and its button signs the member in.')
