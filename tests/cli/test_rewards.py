"""``palier rewards`` and ``palier coupons``, and coupon expiry in ``palier jobs run``, through Typer's runner."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from palier.cli.common import console, err_console
from palier.cli.main import app
from palier.clock import FrozenClock
from palier.db import Database, make_database
from palier.members.models import Member
from palier.programs.models import Program
from palier.rewards import codes
from palier.rewards import service as rewards
from palier.rewards.models import CouponUse, RedeemIn, RewardIn
from palier.web import present
from tests.services import factories as f

runner = CliRunner()
COFFEE = {"kind": "free_product", "cost_points": 100, "title": {"fr": "Café offert", "en": "Free coffee"}}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 250)
    monkeypatch.setattr(err_console, "width", 250)


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'palier.db'}"
    monkeypatch.setenv("PALIER_DATABASE_URL", url)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    database = make_database(url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC) - timedelta(days=40))


@pytest.fixture
def program(cli_db: Database, clock: FrozenClock) -> Program:
    return f.make_program(cli_db, clock, name="Maison Test")


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def added_id(output: str) -> str:
    found = re.search(r"added: (rwd_\w+)", output)
    assert found, output
    return found.group(1)


def add_reward(db: Database, clock: FrozenClock, program: Program, **fields: Any) -> str:
    with db.write() as conn:
        data = RewardIn.model_validate({**COFFEE, "sku": "COFFEE"} | fields)
        return rewards.create_reward(conn=conn, clock=clock, program=program, data=data, actor="test").id


def member_with_points(db: Database, clock: FrozenClock, program: Program, points: int = 1000) -> Member:
    member = f.enrol(db, clock, program, first_name="Camille", last_name="Martin")
    f.adjust(db, clock, program, member, points)
    return member


def redeem(db: Database, clock: FrozenClock, program: Program, member: Member, reward_id: str) -> str:
    with db.write() as conn:
        data = RedeemIn(reward_id=reward_id)
        return rewards.redeem(conn=conn, clock=clock, program=program, member_id=member.id, data=data).coupon.code


def catalog_row(output: str, title: str) -> str:
    return next(line for line in output.splitlines() if f"│ {title} " in line)


# --- the catalog ---


def test_add_list_set_archive_and_bring_back(cli_db: Database, program: Program) -> None:
    added = invoke(
        "rewards", "add", "--program", program.id, "--kind", "free_product", "--cost", "100", "--sku", "BOI-CAFE",
        "--title-fr", "Café offert", "--title-en", "Free coffee", "--channel", "store", "--channel", "app",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    reward_id = added_id(added.output)
    listed = invoke("rewards", "list", "--program", program.id)
    assert listed.exit_code == 0, listed.output
    assert re.search(
        rf"{reward_id}\s*│ Free coffee\s*│ free_product\s*│ Free: BOI-CAFE\s*│\s*100 points │\s*unlimited │ app, store",
        listed.output,
    ), listed.output
    assert "Café offert" in listed.output

    changed = invoke("rewards", "set", reward_id, "--program", program.id, "--cost", "120", "--stock", "10",
                     "--title-en", "A free coffee")  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert "cost_points: 100 → 120" in changed.output and "stock: unlimited → 10" in changed.output
    with cli_db.read() as conn:
        reward = rewards.get_reward(conn=conn, program_id=program.id, reward_id=reward_id)
    assert (reward.cost_points, reward.stock_left, reward.title.en, reward.title.fr) == (
        120, 10, "A free coffee", "Café offert",
    )  # fmt: skip
    assert re.search(r"120 points │\s*10 of 10 left", invoke("rewards", "list", "--program", program.id).output)

    archived = invoke("rewards", "archive", reward_id, "--program", program.id)
    assert archived.exit_code == 0 and "archived" in archived.output
    assert reward_id not in invoke("rewards", "list", "--program", program.id).output
    assert re.search(rf"{reward_id}.*│ archived", invoke("rewards", "list", "--program", program.id, "--all").output)
    assert "already archived" in invoke("rewards", "archive", reward_id, "--program", program.id).output

    back = invoke("rewards", "set", reward_id, "--program", program.id, "--active", "--unlimited", "--all-channels",
                  "--no-end")  # fmt: skip
    assert back.exit_code == 0, back.output
    assert "status: archived → active" in back.output and "stock: 10 → unlimited" in back.output, back.output
    # what was so already is not reported as a change
    assert "channels: app, store → all" in back.output and "ends_at" not in back.output, back.output
    same = invoke("rewards", "set", reward_id, "--program", program.id, "--unlimited", "--no-end", "--all-channels")
    assert same.exit_code == 0 and "already so, nothing changed" in same.output, same.output
    assert "→" not in same.output
    assert re.search(r"120 points │\s*unlimited │ all", invoke("rewards", "list", "--program", program.id).output)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_add_from_a_file(cli_db: Database, program: Program, tmp_path: Path, suffix: str) -> None:
    reward = {
        "kind": "free_shipping",
        "cost_points": 300,
        "title": {"fr": "Livraison offerte", "en": "Free delivery"},
        "description": {"fr": "Sur la prochaine commande.", "en": "On your next order."},
        "channels": ["web", "app"],
        "limit_per_member": {"count": 1, "period": "month"},
        "valid_days": 14,
    }
    path = tmp_path / f"reward{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(reward), encoding="utf-8")
    else:  # as someone would write it by hand, with a date YAML reads as a timestamp
        path.write_text(
            "kind: free_shipping\ncost_points: 300\ntitle:\n  fr: Livraison offerte\n  en: Free delivery\n"
            "description: {fr: Sur la prochaine commande., en: On your next order.}\nchannels: [web, app]\n"
            "limit_per_member: {count: 1, period: month}\nvalid_days: 14\nends_at: 2099-01-31T23:00:00Z\n",
            encoding="utf-8",
        )
    result = invoke("rewards", "add", "--program", program.id, "--file", str(path))
    assert result.exit_code == 0, result.output
    assert re.search(r"gives\s*│ Free shipping", result.output) and re.search(
        r"per member\s*│ 1 per month", result.output
    )
    with cli_db.read() as conn:
        stored = rewards.get_reward(conn=conn, program_id=program.id, reward_id=added_id(result.output))
    assert stored.model_dump(mode="json", include=set(reward)) == reward | {"channels": ["app", "web"]}
    assert (stored.ends_at is not None) == (suffix == ".yaml")


def test_stock_cannot_go_below_the_coupons_out(cli_db: Database, clock: FrozenClock, program: Program) -> None:
    reward_id = add_reward(cli_db, clock, program, kind="gift", sku=None, stock=5)
    member = member_with_points(cli_db, clock, program)
    for _ in range(2):
        redeem(cli_db, clock, program, member, reward_id)
    assert re.search(r"3 of 5 left", invoke("rewards", "list", "--program", program.id).output)
    refused = invoke("rewards", "set", reward_id, "--program", program.id, "--stock", "1")
    assert refused.exit_code == 2
    assert "error stock_below_issued" in refused.output and refused.output.strip().endswith("(--stock)")


def test_a_stock_set_later_counts_the_coupons_already_out(
    cli_db: Database, clock: FrozenClock, program: Program
) -> None:
    reward_id = add_reward(cli_db, clock, program, kind="gift", sku=None)  # unlimited at first
    member = member_with_points(cli_db, clock, program)
    first, _second = (redeem(cli_db, clock, program, member, reward_id) for _ in range(2))
    refused = invoke("rewards", "set", reward_id, "--program", program.id, "--stock", "1")
    assert refused.exit_code == 2 and "error stock_below_issued: 2 coupons" in refused.output
    assert invoke("rewards", "set", reward_id, "--program", program.id, "--stock", "3").exit_code == 0
    assert re.search(r"1 of 3 left", invoke("rewards", "list", "--program", program.id).output)
    assert invoke("coupons", "cancel", first, "--program", program.id).exit_code == 0
    assert re.search(r"2 of 3 left", invoke("rewards", "list", "--program", program.id).output)


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return str(tmp_path / name)


@pytest.mark.parametrize(
    ("args", "code", "field"),
    [
        (["rewards", "list", "--program", "prg_nope"], "program_not_found", "program_id"),
        (["rewards", "add", "--kind", "amount_off", "--cost", "500", "--title-fr", "Bon", "--title-en", "Voucher"],
         "amount_required", "--amount"),
        (["rewards", "add", "--kind", "gift", "--cost", "5", "--title-en", "Mug"], "missing_field", "--title-fr"),
        (["rewards", "add", "--kind", "gift", "--cost", "0", "--title-fr", "Tasse", "--title-en", "Mug"],
         "out_of_range", "--cost"),
        (["rewards", "add", "--kind", "gift", "--cost", "5"], "missing_field", "--title-fr"),
        (["rewards", "add", "--kind", "gift", "--cost", "5", "--title-fr", "T", "--title-en", "M", "--limit", "0",
          "--per", "day"], "out_of_range", "--limit"),
        (["rewards", "add", "--kind", "gift", "--cost", "5", "--title-fr", "T", "--title-en", "M", "--starts-at",
          "soon"], "invalid_type", "--starts-at"),
        (["rewards", "add", "--kind", "gift", "--cost", "5", "--title-fr", "T", "--title-en", "M", "--limit", "1"],
         "missing_option", "--per"),
        (["rewards", "add", "--file", "{good}", "--cost", "3"], "conflicting_options", "--file"),
        (["rewards", "add", "--file", "{unknown}"], "unknown_field", "colour"),
        (["rewards", "add", "--file", "{broken}"], "invalid_file", "--file"),
        (["rewards", "add", "--file", "{list}"], "invalid_file", "--file"),
        (["rewards", "add", "--file", "{no_such_day}"], "invalid_file", "--file"),
        (["rewards", "add", "--file", "{deep}"], "invalid_file", "--file"),
        (["rewards", "add", "--file", "{txt}"], "unsupported_file", "--file"),
        (["rewards", "add", "--file", "{latin}"], "invalid_file", "--file"),
        (["rewards", "set", "rwd_nope", "--cost", "5"], "reward_not_found", "reward_id"),
        (["rewards", "set", "{reward}"], "nothing_to_change", None),
        (["rewards", "set", "{reward}", "--stock", "3", "--unlimited"], "conflicting_options", "--unlimited"),
        (["rewards", "set", "{reward}", "--percent", "10"], "no_such_option", None),
        (["rewards", "set", "{reward}", "--amount", "10"], "amount_not_applicable", "--amount"),
        (["rewards", "set", "{reward}", "--cost", "0"], "out_of_range", "--cost"),
        (["rewards", "set", "{reward}", "--title-en", ""], "invalid_length", "--title-en"),
        (["rewards", "set", "{reward}", "--valid-days", "0"], "out_of_range", "--valid-days"),
        (["rewards", "archive", "rwd_nope"], "reward_not_found", "reward_id"),
        (["coupons", "show", "ABCDE-FGHJK"], "coupon_code_mistyped", "code"),
        (["coupons", "show", "{unknown_code}"], "coupon_not_found", "code"),
        (["coupons", "cancel", "{unknown_code}"], "coupon_not_found", "code"),
    ],
)  # fmt: skip
def test_refusals_print_code_detail_and_field_and_exit_2(
    cli_db: Database,
    clock: FrozenClock,
    program: Program,
    tmp_path: Path,
    args: list[str],
    code: str,
    field: str | None,
) -> None:
    values = {
        "good": write(tmp_path, "good.json", json.dumps(COFFEE | {"sku": "C"})),
        "unknown": write(tmp_path, "unknown.yaml", "kind: gift\ncost_points: 5\ntitle: {fr: a, en: b}\ncolour: red\n"),
        "broken": write(tmp_path, "broken.json", '{"kind": "gift",'),
        "list": write(tmp_path, "list.yml", "- kind: gift\n"),
        "no_such_day": write(tmp_path, "day.yaml", "kind: gift\ncost_points: 5\nstarts_at: 2026-13-01\n"),
        "deep": write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000),
        "txt": write(tmp_path, "reward.txt", "{}"),
        "latin": str(tmp_path / "latin.yaml"),
        "reward": add_reward(cli_db, clock, program),
        "unknown_code": codes.new_code(),
    }
    (tmp_path / "latin.yaml").write_bytes(
        "kind: gift\ncost_points: 5\ntitle: {fr: Café, en: Coffee}\n".encode("cp1252")
    )
    args = [a.format(**values) for a in args]
    result = invoke(*args, *([] if args[1] in ("list",) else ["--program", program.id]))
    assert result.exit_code == 2, result.output
    if code == "no_such_option":  # Typer's own usage error: the option does not exist for set
        assert "No such option" in result.output
        return
    line = next(x for x in result.output.splitlines() if x.startswith("error "))
    assert line.startswith(f"error {code}: ")
    assert line.endswith(f"({field})") if field else not line.endswith(")")


# --- coupons at the till ---


def test_coupon_show_then_cancel_gives_the_points_back(cli_db: Database, clock: FrozenClock, program: Program) -> None:
    reward_id = add_reward(cli_db, clock, program)
    member = member_with_points(cli_db, clock, program, 250)
    clock.set(datetime.now(UTC))
    code = redeem(cli_db, clock, program, member, reward_id)
    assert f.balance(cli_db, program, member).available == 150

    typed = codes.display(code).lower()  # as read out at the till: dashes, lower case
    shown = invoke("coupons", "show", typed, "--program", program.id)
    assert shown.exit_code == 0, shown.output
    assert f"Coupon {code[:4]}-{code[4:8]}-{code[8:]}" in shown.output  # as the portal and the till show it
    assert codes.display(code) == present.display_code(code)
    assert re.search(rf"member\s*│ Camille Martin \({member.id}\)", shown.output)
    assert re.search(rf"reward\s*│ Free coffee / Café offert \({reward_id}\)", shown.output)
    assert re.search(r"gives\s*│ Free: COFFEE", shown.output)
    assert re.search(r"state\s*│ issued: can be used until \d{4}-\d\d-\d\d \d\d:\d\d", shown.output)
    assert re.search(r"points\s*│ 100 points \(held until the coupon is used\)", shown.output)

    cancelled = invoke("coupons", "cancel", code, "--program", program.id)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"100 points back to Camille Martin ({member.id}); available now: 250." in cancelled.output
    balance = f.balance(cli_db, program, member)
    assert (balance.available, balance.held) == (250, 0)
    again = invoke("coupons", "cancel", code, "--program", program.id)
    assert again.exit_code == 0 and "already cancelled" in again.output
    assert f.balance(cli_db, program, member).available == 250
    assert re.search(r"state\s*│ cancelled", invoke("coupons", "show", code, "--program", program.id).output)
    assert invoke("verify", "--program", program.id).exit_code == 0


def test_a_used_coupon_shows_its_order_and_cannot_be_cancelled(
    cli_db: Database, clock: FrozenClock, program: Program
) -> None:
    reward_id = add_reward(cli_db, clock, program, kind="amount_off", sku=None, amount=500, cost_points=500)
    member = member_with_points(cli_db, clock, program)
    code = redeem(cli_db, clock, program, member, reward_id)
    with cli_db.write() as conn:
        use = CouponUse(channel="store", order_id="LYO-1042", store_id="lyon", order_total=3400)
        rewards.use_coupon(conn=conn, clock=clock, program=program, code=code, use=use)
    shown = invoke("coupons", "show", code, "--program", program.id)
    assert re.search(r"state\s*│ used \d{4}-", shown.output), shown.output
    assert re.search(r"used on\s*│ order #LYO-1042 \(store at lyon\), €5.00 off", shown.output)
    assert re.search(r"points\s*│ 500 points \(spent\)", shown.output)
    refused = invoke("coupons", "cancel", code, "--program", program.id)
    assert refused.exit_code == 2
    assert "error coupon_used: This coupon was already used (order #LYO-1042). (code)" in refused.output


def test_store_credit_is_shown_as_such_and_cannot_be_cancelled(
    cli_db: Database, clock: FrozenClock, program: Program
) -> None:
    reward_id = add_reward(cli_db, clock, program, kind="store_credit", sku=None, amount=1000, cost_points=1000)
    member = member_with_points(cli_db, clock, program)
    code = redeem(cli_db, clock, program, member, reward_id)
    shown = invoke("coupons", "show", code, "--program", program.id)
    assert re.search(r"gives\s*│ €10.00 store credit", shown.output), shown.output
    assert re.search(r"state\s*│ used: store credit put in the member's wallet", shown.output)
    refused = invoke("coupons", "cancel", code, "--program", program.id)
    assert refused.exit_code == 2
    assert "error coupon_used: " in refused.output and "#None" not in refused.output
    assert "store credit" in refused.output


def test_cancelling_after_the_points_lots_expired_says_they_expired(cli_db: Database, program: Program) -> None:
    clock = FrozenClock(datetime.now(UTC) - timedelta(days=400))
    member = member_with_points(cli_db, clock, program, 300)  # a lot that expires after 12 months
    reward_id = add_reward(cli_db, clock, program, valid_days=3650)
    clock.set(datetime.now(UTC) - timedelta(days=40))
    code = redeem(cli_db, clock, program, member, reward_id)
    result = invoke("coupons", "cancel", code, "--program", program.id)
    assert result.exit_code == 0, result.output
    assert "0 points back to Camille Martin" in result.output
    assert "100 points came from lots that expired meanwhile: they expired." in result.output
    assert invoke("verify", "--program", program.id).exit_code == 0


# --- jobs ---


def test_jobs_run_expires_overdue_coupons(cli_db: Database, clock: FrozenClock, program: Program) -> None:
    reward_id = add_reward(cli_db, clock, program)  # coupons valid 30 days: issued 40 days ago, overdue now
    member = member_with_points(cli_db, clock, program, 300)
    overdue = redeem(cli_db, clock, program, member, reward_id)
    clock.set(datetime.now(UTC))
    fresh = redeem(cli_db, clock, program, member, reward_id)
    shown = invoke("coupons", "show", overdue, "--program", program.id)
    assert re.search(r"state\s*│ past its expiry date: cannot be used", shown.output), shown.output

    for other in ("mature", "birthdays", "expiry-warnings"):  # only expire (and all) expire coupons too
        done = invoke("jobs", "run", other, "--program", program.id)
        assert done.exit_code == 0 and "coupons:" not in done.output, done.output
    result = invoke("jobs", "run", "all", "--program", program.id)
    assert result.exit_code == 0, result.output
    assert re.search(r"mature\s*│", result.output) and re.search(r"expire\s*│", result.output)
    assert "coupons: 1 past their date expired, their points released" in result.output
    assert re.search(r"state\s*│ expired", invoke("coupons", "show", overdue, "--program", program.id).output)
    assert re.search(r"state\s*│ issued", invoke("coupons", "show", fresh, "--program", program.id).output)
    balance = f.balance(cli_db, program, member)
    assert (balance.available, balance.held) == (200, 100)
    assert "coupons: 0 past" in invoke("jobs", "run", "expire", "--program", program.id).output
    assert invoke("verify", "--program", program.id).exit_code == 0


@pytest.mark.parametrize("columns", ["80", None], ids=["an 80-column terminal", "piped to a file"])
def test_the_list_never_cuts_an_id_short(cli_db: Database, program: Program, columns: str | None) -> None:
    added = invoke("rewards", "add", "--program", program.id, "--kind", "gift", "--cost", "900", "--stock", "3",
                   "--title-fr", "Tablier brodé du Fournil", "--title-en", "Embroidered Fournil apron")  # fmt: skip
    reward_id = added_id(added.output)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | ({"COLUMNS": columns} if columns else {})
    listed = subprocess.run(
        [sys.executable, "-m", "palier.cli.main", "rewards", "list", "--program", program.id],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert reward_id in listed.stdout and "…" not in listed.stdout, listed.stdout
    if columns is None:
        assert "Embroidered Fournil apron" in listed.stdout  # wide enough not to fold the title


def test_rewards_add_help_says_each_default() -> None:
    """The defaults of --stock, --channel and --valid-days are read, not taken for Rich markup and dropped."""
    helped = runner.invoke(app, ["rewards", "add", "--help"], env={"COLUMNS": "200"})
    assert helped.exit_code == 0
    text = " ".join(helped.output.split())
    assert "redeemed in all. [default: unlimited]" in text, helped.output
    assert "repeat for several. [default: all]" in text, helped.output
    assert "Days a coupon can be used. [default: 30]" in text, helped.output
    assert " ." not in text
