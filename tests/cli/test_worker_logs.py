"""What ``palier worker`` writes when its output goes to a file, systemd or docker rather than a terminal:
one line per record, each with its full UTC time, level and logger, never folded, so a log collector or
``grep 2026-12-06T03`` finds every line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from palier.clock import SystemClock
from palier.db import make_database
from palier.db.migrate import upgrade
from palier.notify import outbox, webhooks
from tests.receiver import Receiver
from tests.services import factories as f

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) palier\.worker \S.*\S$")


def test_the_worker_logs_one_dated_line_per_record_when_not_in_a_terminal(tmp_path: Path, receiver: Receiver) -> None:
    url = f"sqlite:///{tmp_path / 'palier.db'}"
    upgrade(url)
    # A webhook address is often a secret itself (a token in its path or query): it stays out of the log.
    hook = f"{receiver.url}/t0k3n-of-the-shop?key=s3cret"
    db, clock = make_database(url), SystemClock()
    program = f.make_program(db, clock)
    with db.write() as conn:
        webhooks.set_webhook(
            conn=conn, clock=clock, program_id=program.id, spec=webhooks.WebhookSet(url=hook), actor="test"
        )
        outbox.emit(conn, program_id=program.id, type_="segment_entered", subject_id=None, payload={}, now=clock.now())
    db.dispose()
    palier = Path(sys.executable).with_name("palier")
    done = subprocess.run(
        [str(palier), "worker", "--once"],
        env={"PATH": "/usr/bin:/bin", "PALIER_DATABASE_URL": url, "COLUMNS": "60"},  # a narrow one folded lines
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if not LINE.match(line)] == [], done.stdout
    said = [line.split(" palier.worker ", 1)[1] for line in lines]
    # --once runs every job once, from cron or a systemd timer: the log says so, not a schedule it won't keep
    assert said[0] == "worker started: every job once, then exit" and said[-1] == "worker stopped"
    assert any(line.startswith("mature: 0 lots, 0 points in ") for line in said), said
    assert "webhooks: 1 event delivered in 1 request" in said and len(receiver.events()) == 1
    assert "t0k3n" not in done.stdout + done.stderr and "s3cret" not in done.stdout + done.stderr
