"""``palier program``: create a program, show it, issue, list and revoke its API keys."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from palier.cli.common import (
    EXIT_REFUSED,
    console,
    err_console,
    from_validation,
    naming_options,
    new_app,
    open_database,
    print_error,
    read_text,
    settings,
    table_columns,
)
from palier.clock import SystemClock
from palier.errors import InvalidInput
from palier.programs.currencies import CURRENCY_EXPONENTS
from palier.programs.models import ApiKey, KeyCreate, NewApiKey, Program, ProgramSettings
from palier.programs.service import create_key, create_program, get_program, list_keys, list_programs, revoke_key
from palier.rules.actions import ActionIn, record_action
from palier.rules.document import dump_yaml, parse_text
from palier.rules.service import apply_rules, current_document
from palier.text import counted, points_word
from palier.yaml_lines import line_of

app = new_app("Loyalty programs: create, list, show, API keys, earning rules (apply, export), actions.")
keys_app = new_app("API keys of a program (stored hashed: a key is shown once, when created).")
app.add_typer(keys_app, name="keys")


class ScopeName(StrEnum):
    admin = "admin"
    pos = "pos"
    read = "read"


@app.command("create")
def create(
    name: str = typer.Option(..., help="The program's name, as members will read it."),
    currency: str = typer.Option("EUR", help="ISO 4217 code of the money purchases are counted in (eur or EUR)."),
    timezone: str = typer.Option("Europe/Paris", help="IANA time zone (birthdays, calendar periods)."),
    default_country: str = typer.Option(
        "FR", help="Country of phone numbers typed without + (ISO 3166: FR, BE, CH, US…)."
    ),
    earn_points: int = typer.Option(1, help="Points earned…"),
    earn_per_amount: int = typer.Option(100, help="…per this many minor units (100 = per euro)."),
    return_window_days: int = typer.Option(14, help="Days purchase points stay pending (returns)."),
    lifetime_months: int | None = typer.Option(
        None, help="Months before points expire, 1 to 240 (default: 12); --never-expire for none."
    ),
    never_expire: bool = typer.Option(False, "--never-expire", help="Points never expire."),
    expiry_warning_days: int = typer.Option(
        30, min=0, help="Warn members this many days before points expire (0: never)."
    ),
    welcome_points: int = typer.Option(0, help="Points given to every new member."),
    points_name: str = typer.Option("points", help="What members call the points."),
    points_name_fr: str | None = typer.Option(None, help="Their name for French-speaking members, if another."),
    points_name_en: str | None = typer.Option(None, help="Their name for English-speaking members, if another."),
) -> None:
    """Create a program and its first admin API key (shown once)."""
    if never_expire and lifetime_months is not None:
        raise InvalidInput(
            "conflicting_options", "Give --lifetime-months or --never-expire, not both.", field="--never-expire"
        )
    currency = currency.strip().upper()
    if currency not in CURRENCY_EXPONENTS:  # "eu" too: invalid_currency, as the model's pattern would not say
        why = f"{currency!r} is not an ISO 4217 currency code such as EUR, USD or JPY"
        raise InvalidInput("invalid_currency", why, field="--currency")
    with naming_options(_OPTIONS):
        spec = ProgramSettings(
            name=name,
            currency=currency,
            timezone=timezone,
            default_country=default_country.strip().upper(),  # "ch" is CH, as --currency eur is EUR
            earn_points=earn_points,
            earn_per_amount=earn_per_amount,
            return_window_days=return_window_days,
            # 0 is refused as the API refuses it (out_of_range), never quietly read as the default
            points_lifetime_months=None if never_expire else (12 if lifetime_months is None else lifetime_months),
            expiry_warning_days=expiry_warning_days,
            welcome_points=welcome_points,
            points_name=points_name,
            points_name_by_language=_by_language(fr=points_name_fr, en=points_name_en),
        )
    clock = SystemClock()
    with open_database() as db, db.write() as conn:
        program = create_program(conn=conn, clock=clock, settings=spec, actor="cli")
        key = create_key(
            conn=conn,
            clock=clock,
            program_id=program.id,
            spec=KeyCreate(name="admin", scopes=["admin"]),  # as POST /v1/programs names it
            actor="cli",
        )
    console.print(f"Program [bold]{escape(program.name)}[/bold] created: [bold cyan]{program.id}[/bold cyan]")
    print_new_key(key)
    next_steps = (  # without the demo, nothing else says how to reach the console
        f'palier program keys create {program.id} --name "Till" --scope pos   # a key for your till or shop',
        f'palier staff add you@example.com --program {program.id} --name "Your Name" --role admin',
        "palier serve, then open http://127.0.0.1:8000/console and sign in with that e-mail",
    )
    console.print("Next:\n" + "\n".join(f"  {escape(step)}" for step in next_steps), soft_wrap=True)


_OPTIONS = {  # the fields of ProgramSettings whose option has another name
    "points_lifetime_months": "--lifetime-months",
    "points_name_by_language.fr": "--points-name-fr",
    "points_name_by_language.en": "--points-name-en",
}


def _by_language(*, fr: str | None, en: str | None) -> dict[Literal["fr", "en"], str]:
    names: dict[Literal["fr", "en"], str] = {}
    if fr:
        names["fr"] = fr
    if en:
        names["en"] = en
    return names


@app.command("list")
def list_command() -> None:
    """The programs of the database, with their ids (for every command that takes one)."""
    with open_database() as db, db.read() as conn:
        found = list_programs(conn=conn)
    if not found:
        console.print("No program yet: create one with `palier program create --name …`.")
        return
    table = Table(title="Programs", title_justify="left")
    table_columns(table, ("id", "name", "currency", "time zone", "created"))
    for program in found:
        table.add_row(
            program.id, escape(program.name), program.currency, program.timezone, f"{program.created_at:%Y-%m-%d %H:%M}"
        )
    console.print(table)


@app.command("show")
def show(program_id: str = typer.Argument(..., help="The program's id (prg_…).")) -> None:
    """A program's settings and its API keys (names and scopes; secrets are never shown again)."""
    with open_database() as db, db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
        keys = list_keys(conn=conn, program_id=program_id)
    console.print(settings_table(program))
    console.print(keys_table(keys))


def keys_table(keys: list[ApiKey]) -> Table:
    table = Table(title="API keys", title_justify="left")
    table_columns(table, ("id", "name", "scopes", "created", "revoked"))
    for key in keys:
        table.add_row(
            key.id,
            escape(key.name),
            ", ".join(key.scopes),
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    return table


def settings_table(program: Program) -> Table:
    table = Table(title=f"{escape(program.name)} ({program.id})", title_justify="left", show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    lifetime = program.points_lifetime_months
    rows = {
        "currency": program.currency,
        "time zone": program.timezone,
        "phone country": program.default_country,
        "earning": f"by the earning rules, version {program.rules_version} (palier program export)"
        if program.rules_version  # the base rate decides nothing once rules are applied (rate_set_by_rules)
        else f"{program.earn_points} {points_word(program.earn_points, program.points_name_in('en'), 'en')} per "
        f"{counted(program.earn_per_amount, 'minor unit')} ({program.rounding})",
        "return window": f"{program.return_window_days} days (points pending until then)",
        "expiry": f"{lifetime} months after earning" if lifetime else "never",
        "welcome bonus": f"{program.welcome_points} {program.points_name_in('en')}",
        "points name": ", ".join(
            [program.points_name]
            + [f"{lang}: {name}" for lang, name in sorted(program.points_name_by_language.items())]
        ),
        "return shortfall": program.return_shortfall,
        "created": f"{program.created_at:%Y-%m-%d %H:%M} UTC",
    }
    for setting, value in rows.items():
        table.add_row(setting, escape(value))
    return table


@keys_app.command("create")
def create_key_command(
    program_id: str = typer.Argument(..., help="The program's id (prg_…)."),
    name: str = typer.Option(..., help="What the key is for (e.g. 'Lyon till 2')."),
    scope: list[ScopeName] = typer.Option(..., help="admin, pos or read; repeat for several."),
) -> None:
    """Issue a new API key for a program (shown once)."""
    try:
        spec = KeyCreate(name=name, scopes=[s.value for s in scope])
    except ValidationError as error:  # said with the option to change, not the API's field name
        problem = from_validation(error)
        raise InvalidInput(
            problem.code, problem.detail, field="--scope" if problem.field == "scopes" else "--name"
        ) from None
    clock = SystemClock()
    with open_database() as db, db.write() as conn:
        get_program(conn=conn, program_id=program_id)
        key = create_key(conn=conn, clock=clock, program_id=program_id, spec=spec, actor="cli")
    print_new_key(key)


@keys_app.command("list")
def list_keys_command(program_id: str = typer.Argument(..., help="The program's id (prg_…).")) -> None:
    """A program's API keys: ids (for revoke), names, scopes, revoked or not (secrets are never shown again)."""
    with open_database() as db, db.read() as conn:
        get_program(conn=conn, program_id=program_id)
        keys = list_keys(conn=conn, program_id=program_id)
    active = sum(1 for key in keys if key.revoked_at is None)
    console.print(keys_table(keys))
    console.print(f"{counted(active, 'active key')}, {counted(len(keys) - active, 'revoked key')}.")


@keys_app.command("revoke")
def revoke_key_command(
    program_id: str = typer.Argument(..., help="The program's id (prg_…)."),
    key_id: str = typer.Argument(..., help="The key's id (key_…, from `palier program keys list`)."),
) -> None:
    """Revoke an API key: the API refuses it from its next request on (as the console's Revoke, and
    DELETE /v1/keys/{id}). Revoking it again changes nothing."""
    clock = SystemClock()
    with open_database() as db, db.write() as conn:
        get_program(conn=conn, program_id=program_id)
        before = next((key for key in list_keys(conn=conn, program_id=program_id) if key.id == key_id), None)
        key = revoke_key(conn=conn, clock=clock, program_id=program_id, key_id=key_id, actor="cli")
    if before is not None and before.revoked_at is not None:
        console.print(f"API key {key.id} ([bold]{escape(key.name)}[/bold]) was already revoked on "
                      f"{key.revoked_at:%Y-%m-%d %H:%M} UTC: nothing changed.")  # fmt: skip
        return
    console.print(
        f"API key {key.id} ([bold]{escape(key.name)}[/bold], {', '.join(key.scopes)}) revoked: "
        "the API refuses it from now on."
    )


def print_new_key(key: NewApiKey) -> None:
    """The secret on a line of its own (easy to copy), and the warning that it will not be shown again."""
    console.print(f"API key [bold]{escape(key.name)}[/bold] ({key.id}), scopes: {', '.join(key.scopes)}")
    console.print(f"  [bold green]{key.secret}[/bold green]", soft_wrap=True)
    console.print(
        "[yellow]Shown once: only its hash is stored. Copy it now; send it as 'Authorization: Bearer <key>'.[/yellow]"
    )


@app.command("apply")
def apply_command(
    program_id: str = typer.Argument(..., help="The program's id (prg_…)."),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A rules file, YAML or JSON."),
) -> None:
    """Apply a rules file as the program's new version of its earning rules (refused whole if invalid, with
    every problem at its line)."""
    text = read_text(file, code="invalid_rules_file", field="file")
    try:
        document = parse_text(text)
        with open_database() as db, db.write() as conn:
            get_program(conn=conn, program_id=program_id)
            applied = apply_rules(conn=conn, clock=SystemClock(), program_id=program_id, document=document, actor="cli")
    except InvalidInput as error:
        problems = error.extra.get("errors") or _problem_at_a_line(text, error)
        if not problems:
            raise
        _print_problems(file, text, error, problems)
        raise typer.Exit(EXIT_REFUSED) from None
    if not applied.new:
        console.print(f"The rules are unchanged: version [bold]{applied.rules.version}[/bold] stays in force.")
        return
    console.print(
        f"Rules version [bold]{applied.rules.version}[/bold] applied: {counted(len(document.rules), 'rule')}, "
        f"{counted(len(document.campaigns), 'campaign')}, {counted(len(document.actions), 'action type')}; "
        f"in force for events from {applied.rules.effective_from:%Y-%m-%d %H:%M:%S} UTC."
    )


def _problem_at_a_line(text: str, error: InvalidInput) -> list[dict[str, str]]:
    """A refusal found against the database (a reward not in the catalog…), as a problem of the file when its
    field is at a line of it; none for a refusal of something else (an unknown program)."""
    if not error.field or not line_of(text, error.field):
        return []
    message = error.detail.removeprefix("The rules were not applied: ").removeprefix(f"{error.field}: ")
    return [{"field": error.field, "code": error.code, "message": message}]


def _print_problems(file: Path, text: str, error: InvalidInput, problems: list[dict[str, str]]) -> None:
    """Every problem of a refused rules file, each at ``file:line`` (where an editor jumps to) with its field."""
    print_error(
        InvalidInput(
            error.code,
            f"The rules were not applied: {counted(len(problems), 'problem')} in {file.name}, nothing changed.",
            field=error.field,
        )
    )
    for problem in problems:
        line = line_of(text, problem["field"])
        where = f"{file}:{line}" if line else str(file)
        err_console.print(
            f"  {where}  {problem['field']}  {problem['code']}: {problem['message']}", markup=False, soft_wrap=True
        )


@app.command("export")
def export_command(
    program_id: str = typer.Argument(..., help="The program's id (prg_…)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (default: print)."),
) -> None:
    """The rules in force, as YAML (the base rate as a rule when none were applied yet)."""
    with open_database() as db, db.read() as conn:
        program = get_program(conn=conn, program_id=program_id)
        version, document = current_document(conn=conn, program=program)
    text = f"# {program.name}: earning rules, version {version}\n" + dump_yaml(document)
    if output is None:
        console.print(text, markup=False, highlight=False, end="")
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise InvalidInput(
                "cannot_write", f"Cannot write {output}: {error.strerror or error}.", field="--output"
            ) from None
        console.print(f"Rules version {version} written to {escape(str(output))}")


@app.command("action")
def action_command(
    program_id: str = typer.Argument(..., help="The program's id (prg_…)."),
    member_id: str = typer.Argument(..., help="The member (mem_…)."),
    action: str = typer.Argument(..., help="An action type of the program's rules (newsletter, review…)."),
    reference: str = typer.Argument(..., help="Unique per action type: the review id, the account followed…"),
) -> None:
    """Record a behaviour action for a member and pay its points (once per reference, within its limit)."""
    data = ActionIn(action=action, reference=reference)
    with open_database() as db, db.write() as conn:
        program = get_program(conn=conn, program_id=program_id)
        result, replayed = record_action(
            conn=conn,
            clock=SystemClock(),
            program=program,
            member_id=member_id,
            data=data,
            key=settings().card_hash_key,
        )
    again = " (already recorded: nothing changed)" if replayed else ""
    console.print(f"{escape(result.reason)}: +{result.points} {program.points_name_in('en')}{again}")
