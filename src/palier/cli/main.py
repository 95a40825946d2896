"""The ``palier`` command: each group of commands lives in its own module of this package."""

from __future__ import annotations

from palier.cli import coupons, db, demo, imports, jobs, members, programs, rewards, scan, serve, staff, verify
from palier.cli.common import new_app

app = new_app(
    "Palier, the open-source loyalty engine. The database is PALIER_DATABASE_URL "
    "(default: sqlite:///palier.db); payment cards are keyed with PALIER_CARD_KEY."
)
app.add_typer(db.app, name="db")
app.add_typer(programs.app, name="program")
app.add_typer(imports.app, name="import")
app.add_typer(jobs.app, name="jobs")
app.add_typer(rewards.app, name="rewards")
app.add_typer(coupons.app, name="coupons")
app.add_typer(members.app, name="members")
app.add_typer(staff.app, name="staff")
app.command("verify")(verify.verify)
app.command("scan-cards")(scan.scan_cards)
app.command("worker")(jobs.worker)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)

if __name__ == "__main__":
    app()
