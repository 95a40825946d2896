"""Every refusal Palier can give, as one tree of exceptions with stable codes.

    PalierError                      code, status, field, detail, extra
    ├── InvalidInput          422    the request is malformed (unknown field, bad phone, card in a name…)
    ├── Unauthenticated       401    no or unknown API key
    ├── Forbidden             403    the key lacks the scope, or the object belongs to another program
    ├── NotFound              404    unknown member, order, identity…
    ├── Conflict              409    duplicate identity, idempotency key reused with another body…
    ├── Unprocessable         422    well-formed but refused by the rules (return exceeds purchase…)
    ├── NotJson               415    a body sent as a form or text where the API reads JSON
    └── Throttled             429    too many failed sign-ins: wait, then try again

Services raise these; ``api/problems.py`` maps them to RFC 9457 problem+json and the CLI prints them.
A service never raises an HTTP exception. ``code`` values are part of the public API: never rename one.
"""

from __future__ import annotations

from typing import Any

from palier.text import mask_card_numbers

# Words of a code that a title writes as prose writes them (a code is all lower case: ``invalid_api_key``).
_AS_WRITTEN = {"api": "API", "csv": "CSV", "http": "HTTP", "id": "ID", "ids": "IDs", "ip": "IP", "json": "JSON",
               "nul": "NUL", "sku": "SKU", "url": "URL", "utc": "UTC", "vip": "VIP", "yaml": "YAML"}  # fmt: skip


def title_of(code: str) -> str:
    """A problem's title: the same for every problem of ``code`` (RFC 9457), ``Insufficient points``,
    ``Invalid API key``. Only the title reads as words: the ``code`` stays what clients compare."""
    words = [_AS_WRITTEN.get(word, word) for word in code.split("_")]
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def _masked(value: Any) -> Any:
    """``value`` with every card number in its texts masked, however deep (a list of errors, each a dict)."""
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, dict):
        return {name: _masked(item) for name, item in value.items()}
    return value


class PalierError(Exception):
    status = 400

    def __init__(self, code: str, detail: str, *, field: str | None = None, **extra: Any) -> None:
        # A detail names what was sent ("No member 4970… in this program"): never a card number, which would
        # then reach the answer, the page and the logs. Masked here, once, for every refusal.
        detail = mask_card_numbers(detail)
        extra = {name: _masked(value) for name, value in extra.items()}  # ``errors``' messages too
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://palier.dev/problems/{self.code}",
            "title": title_of(self.code),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return body


class InvalidInput(PalierError):
    status = 422


class Unauthenticated(PalierError):
    status = 401


class Forbidden(PalierError):
    status = 403


class NotFound(PalierError):
    status = 404


class Conflict(PalierError):
    status = 409


class Unprocessable(PalierError):
    status = 422


class NotJson(PalierError):
    status = 415


class Throttled(PalierError):
    status = 429


class FieldError(ValueError):
    """A model-level check's refusal that names the field at fault: pydantic gives an error raised by a model
    validator no location of its own, so it would point at the whole body. Read it with :func:`error_location`."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.field = field


def error_location(error: Any) -> tuple[Any, ...]:
    """Where one pydantic error points: its ``loc``, and the field a :class:`FieldError` names under it."""
    loc = tuple(error.get("loc", ()))
    cause = (error.get("ctx") or {}).get("error")
    return (*loc, cause.field) if isinstance(cause, FieldError) else loc


def value_error_code(message: str) -> str | None:
    """Our validators raise ``ValueError("some_code: what is wrong")``: the stable code, if there is one."""
    head = message.split(":", 1)[0]
    return head if ":" in message and head.replace("_", "").isalpha() and head.islower() else None


def validation_message(error: Any) -> str:
    """What one pydantic error says, in our words: a text's length in characters (pydantic counts "items"
    when a length is checked after our own validators), and without pydantic's "Value error, " prefix."""
    context = error.get("ctx") or {}
    if error.get("type") in ("too_short", "too_long") and isinstance(error.get("input"), str):
        bound, limit = (
            ("at least", context["min_length"]) if "min_length" in context else ("at most", context["max_length"])
        )
        return f"Text should have {bound} {limit} character{'' if limit == 1 else 's'}, not {len(error['input'])}"
    # pydantic may quote what was sent ("Input tag '4970…' found using 'type'"): never a card number back
    return mask_card_numbers(str(error.get("msg", "")).removeprefix("Value error, "))


def invalid_input(exc: Any, *, default_field: str = "body") -> InvalidInput:
    """The first error of a pydantic ``ValidationError`` raised inside a service, as an :class:`InvalidInput`."""
    first = exc.errors()[0]
    message = validation_message(first)
    code = value_error_code(message) or "invalid_value"
    loc = [str(part) for part in error_location(first) if not str(part).startswith("function-")]
    return InvalidInput(code, message.removeprefix(f"{code}: "), field=".".join(loc) or default_field)
