"""``palier rewards``: the catalog members redeem their points for: list, add, change, archive."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from palier.cli.common import console, naming_options, new_app, open_database, read_text, table_columns
from palier.clock import SystemClock
from palier.errors import InvalidInput
from palier.programs.models import Program
from palier.programs.service import get_program
from palier.rewards.models import Reward, RewardIn, RewardUpdate
from palier.rewards.service import create_reward, describe_reward, get_reward, list_rewards, update_reward

app = new_app("The reward catalog: list, add, change, archive.")
ACTOR = "cli"
PROGRAM = typer.Option(..., "--program", help="The program's id (prg_…).")
OPTIONS = {  # the fields of a reward whose option has another name (the others: min_order is --min-order)
    "cost_points": "--cost",
    "title": "--title-fr",
    "title.fr": "--title-fr",
    "title.en": "--title-en",
    "description.fr": "--description-fr",
    "description.en": "--description-en",
    "channels": "--channel",
    "limit_per_member.count": "--limit",
    "limit_per_member.period": "--per",
}


class Kind(StrEnum):
    amount_off = "amount_off"
    percent_off = "percent_off"
    free_product = "free_product"
    free_shipping = "free_shipping"
    gift = "gift"
    store_credit = "store_credit"


class ChannelName(StrEnum):
    web = "web"
    store = "store"
    phone = "phone"
    app = "app"
    partner = "partner"


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    year = "year"
    ever = "ever"


@app.command("list")
def list_command(
    program: str = PROGRAM,
    show_all: bool = typer.Option(False, "--all", help="Archived rewards too."),
) -> None:
    """The catalog, cheapest first: what each reward gives, its cost, stock and channels."""
    with open_database() as db, db.read() as conn:
        found = get_program(conn=conn, program_id=program)
        catalog = list_rewards(conn=conn, program_id=program, status=None if show_all else "active")
    if not catalog:
        console.print(f"No rewards in {escape(found.name)} yet: add one with [bold]palier rewards add[/bold].")
        return
    table = Table(title=f"Rewards of {escape(found.name)} ({program})", title_justify="left")
    columns = ["id", "title (en / fr)", "kind", "gives", "cost", "stock", "channels", "coupon valid"]
    table_columns(table, [*columns, *(["status"] if show_all else [])], right=("cost", "stock"))
    for reward in catalog:
        row = [
            reward.id,
            f"{escape(reward.title.en)}\n[dim]{escape(reward.title.fr)}[/dim]",
            reward.kind,
            escape(describe_reward(reward, found)),
            f"{reward.cost_points:,} {found.points_name_in('en')}",
            _stock(reward),
            ", ".join(reward.channels) if reward.channels else "all",
            f"{reward.valid_days} days",
        ]
        table.add_row(*row, *([reward.status] if show_all else []))
    console.print(table)


@app.command("add")
def add(
    program: str = PROGRAM,
    file: Path | None = typer.Option(
        None, "--file", exists=True, dir_okay=False, readable=True, help="A reward as JSON or YAML (the API's fields)."
    ),
    kind: Kind | None = typer.Option(None, help="What the reward gives."),
    cost: int | None = typer.Option(None, help="Points it costs."),
    title_fr: str | None = typer.Option(None, help="Title in French."),
    title_en: str | None = typer.Option(None, help="Title in English."),
    description_fr: str | None = typer.Option(None, help="Description in French."),
    description_en: str | None = typer.Option(None, help="Description in English."),
    amount: int | None = typer.Option(None, help="amount_off: minor units off; store_credit: credit given."),
    percent: int | None = typer.Option(None, help="percent_off: the percentage."),
    max_discount: int | None = typer.Option(None, help="percent_off: cap, in minor units."),
    sku: str | None = typer.Option(None, help="free_product: the product's SKU."),
    min_order: int | None = typer.Option(None, help="Smallest order the coupon applies to (minor units)."),
    stock: int | None = typer.Option(None, help=escape("How many can be redeemed in all. [default: unlimited]")),
    channel: list[ChannelName] | None = typer.Option(
        None, help=escape("Where its coupon is used; repeat for several. [default: all]")
    ),
    valid_days: int | None = typer.Option(None, help=escape("Days a coupon can be used. [default: 30]")),
    starts_at: str | None = typer.Option(None, help="On offer from (ISO 8601 with a time zone)."),
    ends_at: str | None = typer.Option(None, help="On offer until (ISO 8601 with a time zone)."),
    limit: int | None = typer.Option(None, help="Redemptions allowed per member …"),
    per: Period | None = typer.Option(None, help="… per day, week, month, year, or ever."),
) -> None:
    """Add a reward, from options or from a JSON or YAML file (not both)."""
    options = {
        "kind": kind.value if kind else None,
        "cost_points": cost,
        "title": _localized(title_fr, title_en),
        "description": _localized(description_fr, description_en),
        "amount": amount,
        "percent": percent,
        "max_discount": max_discount,
        "sku": sku,
        "min_order": min_order,
        "stock": stock,
        "channels": [c.value for c in channel] if channel else None,
        "valid_days": valid_days,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "limit_per_member": {"count": limit, "period": per.value} if limit is not None and per else None,
    }
    if (limit is None) != (per is None):
        raise InvalidInput(
            "missing_option", "Give --limit and --per together.", field="--per" if per is None else "--limit"
        )
    given = {name: value for name, value in options.items() if value is not None}
    if file is not None and given:
        named = {"cost_points": "cost", "channels": "channel", "limit_per_member": "limit", "title": "title-…"}
        shown = ", ".join("--" + named.get(name, name).replace("_", "-") for name in given)
        raise InvalidInput(
            "conflicting_options",
            f"Give the reward in --file or in options, not both (also given: {shown}).",
            field="--file",
        )
    with naming_options(OPTIONS if file is None else None):  # a file's fields are the API's: named as they are
        data = RewardIn.model_validate(read_reward_file(file) if file is not None else given)
    with open_database() as db, db.write() as conn:
        found = get_program(conn=conn, program_id=program)
        with naming_options(OPTIONS if file is None else None):
            reward = create_reward(conn=conn, clock=SystemClock(), program=found, data=data, actor=ACTOR)
    console.print(f"Reward [bold]{escape(reward.title.en)}[/bold] added: [bold cyan]{reward.id}[/bold cyan]")
    console.print(reward_table(reward, found))


@app.command("set")
def set_command(
    reward_id: str = typer.Argument(..., help="The reward's id (rwd_…)."),
    program: str = PROGRAM,
    cost: int | None = typer.Option(None, help="Points it costs."),
    stock: int | None = typer.Option(None, help="How many can be redeemed in all (coupons out count)."),
    unlimited: bool = typer.Option(False, "--unlimited", help="No stock limit."),
    title_fr: str | None = typer.Option(None, help="Title in French."),
    title_en: str | None = typer.Option(None, help="Title in English."),
    amount: int | None = typer.Option(None, help="amount_off: minor units off; store_credit: credit given."),
    min_order: int | None = typer.Option(None, help="Smallest order the coupon applies to (minor units)."),
    valid_days: int | None = typer.Option(None, help="Days a new coupon can be used."),
    ends_at: str | None = typer.Option(None, help="On offer until (ISO 8601 with a time zone)."),
    no_end: bool = typer.Option(False, "--no-end", help="On offer with no end date."),
    channel: list[ChannelName] | None = typer.Option(None, help="Where its coupon is used; repeat."),
    all_channels: bool = typer.Option(False, "--all-channels", help="Redeemable on every channel."),
    active: bool = typer.Option(False, "--active", help="Put an archived reward back in the catalog."),
) -> None:
    """Change a few fields of a reward; the others stay as they are. Coupons already issued keep their terms."""
    _refuse_both(stock is not None and unlimited, "--stock", "--unlimited")
    _refuse_both(ends_at is not None and no_end, "--ends-at", "--no-end")
    _refuse_both(bool(channel) and all_channels, "--channel", "--all-channels")
    with open_database() as db, db.write() as conn:
        found = get_program(conn=conn, program_id=program)
        before = get_reward(conn=conn, program_id=program, reward_id=reward_id)
        sent: dict[str, Any] = {
            "cost_points": cost,
            "stock": stock,
            "amount": amount,
            "min_order": min_order,
            "valid_days": valid_days,
            "ends_at": ends_at,
            "channels": [c.value for c in channel] if channel else None,
            "status": "active" if active else None,
        }
        sent = {name: value for name, value in sent.items() if value is not None}
        if title_fr is not None or title_en is not None:  # one language changed: the other stays
            sent["title"] = before.title.model_dump() | (_localized(title_fr, title_en) or {})
        sent |= {name: None for name, cleared in (("stock", unlimited), ("ends_at", no_end)) if cleared}
        if all_channels:
            sent["channels"] = None
        if not sent:
            raise InvalidInput("nothing_to_change", "Give at least one field to change (see --help).", field=None)
        with naming_options(OPTIONS):
            changes = RewardUpdate.model_validate(sent)
            after = update_reward(
                conn=conn, clock=SystemClock(), program=found, reward_id=reward_id, changes=changes, actor=ACTOR
            )
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    changed = [name for name in changes.changes() if old[name] != new[name]]  # --no-end on no end changes nothing
    if not changed:
        console.print(f"Reward [bold]{escape(after.title.en)}[/bold] ({after.id}): already so, nothing changed.")
        return
    console.print(f"Reward [bold]{escape(after.title.en)}[/bold] ({after.id}) updated:")
    for name in changed:
        console.print(f"  {name}: {_shown(name, old[name])} → [bold]{_shown(name, new[name])}[/bold]", soft_wrap=True)


@app.command("archive")
def archive(reward_id: str = typer.Argument(..., help="The reward's id (rwd_…)."), program: str = PROGRAM) -> None:
    """Take a reward out of the catalog; coupons already issued for it stay valid."""
    with open_database() as db, db.write() as conn:
        found = get_program(conn=conn, program_id=program)
        reward = get_reward(conn=conn, program_id=program, reward_id=reward_id)
        if reward.status == "archived":
            console.print(f"Reward {escape(reward.title.en)} ({reward_id}) was already archived: nothing to do.")
            return
        update_reward(
            conn=conn,
            clock=SystemClock(),
            program=found,
            reward_id=reward_id,
            changes=RewardUpdate(status="archived"),
            actor=ACTOR,
        )
    console.print(
        f"Reward [bold]{escape(reward.title.en)}[/bold] ({reward_id}) archived: no longer offered; "
        "coupons already issued for it can still be used. [dim]palier rewards set --active brings it back.[/dim]"
    )


def read_reward_file(path: Path) -> Any:
    """A reward's fields from a ``.json``, ``.yaml`` or ``.yml`` file: one mapping, the API's field names."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise InvalidInput("unsupported_file", f"{path.name}: give a .json, .yaml or .yml file.", field="--file")
    text = read_text(path, code="invalid_file", field="--file", encoding="utf-8-sig")
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:  # ValueError: bad JSON, or a date that does not exist
        raise InvalidInput("invalid_file", f"{path.name} cannot be read: {error}", field="--file") from None
    except RecursionError:
        raise InvalidInput("invalid_file", f"{path.name} nests too deep to read.", field="--file") from None
    if not isinstance(data, dict):
        raise InvalidInput("invalid_file", f"{path.name} must hold one reward: a mapping of fields.", field="--file")
    return data


def reward_table(reward: Reward, program: Program) -> Table:
    table = Table(title=f"{reward.title.en} ({reward.id})", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    limit = reward.limit_per_member
    rows = {
        "title": f"{reward.title.en} / {reward.title.fr}",
        "gives": describe_reward(reward, program),
        "cost": f"{reward.cost_points:,} {program.points_name_in('en')}",
        "stock": _stock(reward),
        "channels": ", ".join(reward.channels) if reward.channels else "all",
        "coupon valid": f"{reward.valid_days} days",
        "per member": (f"{limit.count} ever" if limit.period == "ever" else f"{limit.count} per {limit.period}")
        if limit
        else "no limit",
        "on offer": f"{_when(reward.starts_at, 'now')} → {_when(reward.ends_at, 'no end')}",
        "status": reward.status,
    }
    for name, value in rows.items():
        table.add_row(name, escape(value))
    return table


def _stock(reward: Reward) -> str:
    return "unlimited" if reward.stock is None else f"{reward.stock_left:,} of {reward.stock:,} left"


def _when(value: Any, default: str) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else default


def _localized(fr: str | None, en: str | None) -> dict[str, str] | None:
    given = {lang: text for lang, text in (("fr", fr), ("en", en)) if text is not None}
    return given or None


def _refuse_both(both: bool, first: str, second: str) -> None:
    if both:
        raise InvalidInput("conflicting_options", f"Give {first} or {second}, not both.", field=second)


def _shown(name: str, value: Any) -> str:
    if value is None:
        return {"stock": "unlimited", "channels": "all", "ends_at": "no end"}.get(name, "none")
    if isinstance(value, dict):  # a title: English first, as in the list
        return escape(" / ".join(str(value[lang]) for lang in ("en", "fr") if lang in value))
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value))
    return escape(str(value))
