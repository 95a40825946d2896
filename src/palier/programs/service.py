"""Programs: create and configure them, issue and check their API keys, keep the audit trail."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from palier.clock import Clock, utc
from palier.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from palier.ids import is_id, new_id
from palier.ledger.accounts import money_asset, open_program_accounts
from palier.programs.currencies import CURRENCY_EXPONENTS
from palier.programs.models import (
    ApiKey,
    AuditEntry,
    AuditPage,
    Caller,
    KeyCreate,
    NewApiKey,
    Program,
    ProgramSettings,
    ProgramUpdate,
)
from palier.programs.tables import api_keys, audit_entries, programs


def create_program(*, conn: Connection, clock: Clock, settings: ProgramSettings, actor: str = "cli") -> Program:
    now = clock.now()
    program_id = new_id("program")
    exponent = CURRENCY_EXPONENTS[settings.currency]  # ProgramSettings only takes ISO 4217 codes
    conn.execute(
        insert(programs).values(
            id=program_id,
            currency_exponent=exponent,
            created_at=now,
            updated_at=now,
            **settings.model_dump(),
        )
    )
    open_program_accounts(conn, program_id=program_id, money=money_asset(settings.currency, exponent))
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program_id,
        actor=actor,
        action="program.created",
        subject_id=program_id,
        details=settings.model_dump(mode="json"),
    )
    return get_program(conn=conn, program_id=program_id)


def get_program(*, conn: Connection, program_id: str) -> Program:
    row = conn.execute(select(programs).where(programs.c.id == program_id)).mappings().first()
    if row is None:
        hint = "`palier program list` shows the programs of this database."  # the id is long, and shown once
        raise NotFound("program_not_found", f"No program {program_id}: {hint}", field="program_id")
    return _program(row)


def list_programs(*, conn: Connection) -> list[Program]:
    """Every program of the database, oldest first (an instance holds a handful: one per merchant)."""
    rows = conn.execute(select(programs).order_by(programs.c.created_at, programs.c.id)).mappings()
    return [_program(row) for row in rows]


def _program(row: Any) -> Program:
    data = {column.name: row[column.name] for column in programs.c}
    data["created_at"], data["updated_at"] = utc(data["created_at"]), utc(data["updated_at"])
    return Program.model_validate(data)


def update_program(*, conn: Connection, clock: Clock, program_id: str, changes: ProgramUpdate, actor: str) -> Program:
    current = get_program(conn=conn, program_id=program_id)  # NotFound before anything is written
    values = changes.model_dump(exclude_unset=True)
    _check_rate(current, values)
    if values.pop("never_expire", None):
        values["points_lifetime_months"] = None
    if values:
        conn.execute(update(programs).where(programs.c.id == program_id).values(updated_at=clock.now(), **values))
        record_audit(
            conn=conn,
            clock=clock,
            program_id=program_id,
            actor=actor,
            action="program.updated",
            subject_id=program_id,
            details=changes.model_dump(mode="json", exclude_unset=True),
        )
    return get_program(conn=conn, program_id=program_id)


def _check_rate(program: Program, values: dict[str, Any]) -> None:
    """Once earning rules are applied, purchases earn by them: a base rate changed here would change nothing."""
    changed = [n for n in ("earn_points", "earn_per_amount") if n in values and values[n] != getattr(program, n)]
    if program.rules_version and changed:
        raise Conflict(
            "rate_set_by_rules",
            f"Purchases earn by the earning rules (version {program.rules_version}), not by the base rate: change "
            "the rate in the rules (GET /v1/program/rules, then POST it changed).",
            field=changed[0],
            rules_version=program.rules_version,
        )


# --- API keys: "<key id>.<secret>"; only sha256(secret) is stored. The secret is 256 random bits,
# so a fast hash is the right tool (a slow password hash would only slow every request down).


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(*, conn: Connection, clock: Clock, program_id: str, spec: KeyCreate, actor: str) -> NewApiKey:
    key_id = new_id("key")
    secret = secrets.token_urlsafe(32)
    now = clock.now()
    conn.execute(
        insert(api_keys).values(
            id=key_id,
            program_id=program_id,
            name=spec.name,
            scopes=",".join(spec.scopes),
            secret_hash=_hash(secret),
            created_at=now,
        )
    )
    record_audit(
        conn=conn,
        clock=clock,
        program_id=program_id,
        actor=actor,
        action="key.created",
        subject_id=key_id,
        details={"name": spec.name, "scopes": spec.scopes},
    )
    return NewApiKey(id=key_id, name=spec.name, scopes=spec.scopes, created_at=now, secret=f"{key_id}.{secret}")


def list_keys(*, conn: Connection, program_id: str) -> list[ApiKey]:
    rows = conn.execute(select(api_keys).where(api_keys.c.program_id == program_id).order_by(api_keys.c.id)).mappings()
    return [_key(row) for row in rows]


def revoke_key(*, conn: Connection, clock: Clock, program_id: str, key_id: str, actor: str) -> ApiKey:
    result = conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.program_id == program_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    row = (
        conn.execute(select(api_keys).where(api_keys.c.id == key_id, api_keys.c.program_id == program_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("key_not_found", f"No API key {key_id} in this program.", field="key_id")
    if result.rowcount:
        record_audit(
            conn=conn,
            clock=clock,
            program_id=program_id,
            actor=actor,
            action="key.revoked",
            subject_id=key_id,
        )
    return _key(row)


def authenticate(*, conn: Connection, token: str) -> Caller:
    """The caller behind an API key, or Unauthenticated (same answer for unknown, wrong or revoked)."""
    return authenticate_with_program(conn=conn, token=token, program=False)[0]


_KEY_COLUMNS = (api_keys.c.program_id, api_keys.c.scopes, api_keys.c.secret_hash, api_keys.c.revoked_at)
# Built once (every API request runs one of them): building a statement costs about as much as running it.
_find_key = select(*_KEY_COLUMNS).where(api_keys.c.id == bindparam("key_id"))
_find_key_and_program = _find_key.add_columns(*programs.c).join_from(
    api_keys, programs, programs.c.id == api_keys.c.program_id
)


def authenticate_with_program(*, conn: Connection, token: str, program: bool = True) -> tuple[Caller, Program | None]:
    """:func:`authenticate`, and the key's program read by the same statement (what every API request needs:
    one round trip instead of two). ``program=False``: the key alone."""
    key_id, _, secret = token.partition(".")
    row = None
    if key_id.startswith("key_") and secret:
        query = _find_key_and_program if program else _find_key
        row = conn.execute(query, {"key_id": key_id}).mappings().first()
    if row is None or row["revoked_at"] is not None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
        raise Unauthenticated("invalid_api_key", "The API key is missing, unknown or revoked.", field="Authorization")
    caller = Caller(program_id=row["program_id"], key_id=key_id, scopes=frozenset(row["scopes"].split(",")))
    return caller, _program(row) if program else None


def require_scope(caller: Caller, *allowed: str) -> None:
    """Admin may do everything; otherwise the key needs one of ``allowed``."""
    if "admin" in caller.scopes or caller.scopes.intersection(allowed):
        return
    raise Forbidden(
        "insufficient_scope",
        f"This API key has scopes {sorted(caller.scopes)}; this action needs one of {sorted({'admin', *allowed})}.",
        field="Authorization",
    )


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        scopes=row["scopes"].split(","),
        created_at=utc(row["created_at"]),
        revoked_at=utc(row["revoked_at"]) if row["revoked_at"] else None,
    )


def record_audit(
    *,
    conn: Connection,
    clock: Clock,
    program_id: str,
    actor: str,
    action: str,
    subject_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(audit_entries).values(
            id=new_id("audit"),
            program_id=program_id,
            actor=actor,
            action=action,
            subject_id=subject_id,
            details=details,
            created_at=clock.now(),
        )
    )


def audit_trail(*, conn: Connection, program_id: str, cursor: str | None, limit: int) -> AuditPage:
    """The program's audit entries, newest first; ``cursor`` is the id of the last entry of the page before."""
    if cursor is not None and (
        not is_id(cursor, "aud")
        or conn.execute(
            select(audit_entries.c.id).where(audit_entries.c.id == cursor, audit_entries.c.program_id == program_id)
        ).first()
        is None
    ):  # another program's entry would page from the wrong place, in silence
        raise InvalidInput("invalid_cursor", "This cursor was not issued by this program's audit.", field="cursor")
    query = select(audit_entries).where(audit_entries.c.program_id == program_id)
    if cursor is not None:
        query = query.where(audit_entries.c.id < cursor)
    rows = conn.execute(query.order_by(audit_entries.c.id.desc()).limit(limit + 1)).mappings().all()
    items = [AuditEntry(**{**row, "created_at": utc(row["created_at"])}) for row in rows[:limit]]
    return AuditPage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)
