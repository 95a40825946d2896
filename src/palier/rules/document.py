"""Reading a rules file (YAML or JSON) into a checked :class:`RuleSetDocument`, or refusing it whole.

Every problem is reported with the path of the offending field (``rules[2].conditions.weekdays``):
the first as the error's ``field`` and all of them in ``errors``. Nothing is applied from a refused file.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import yaml
from pydantic import ValidationError

from palier.errors import InvalidInput, error_location
from palier.rules.models import (
    EFFECT_TYPES,
    EFFECTS_FOR,
    PURCHASE_ONLY,
    Campaign,
    Conditions,
    Multiplier,
    PointsPerAmount,
    RuleSetDocument,
)
from palier.yaml_lines import TOO_DEEP, bad_value_line, duplicate_keys

_PYDANTIC_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "literal_error": "invalid_choice",
    "union_tag_invalid": "invalid_choice",
    "union_tag_not_found": "missing_field",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "too_short": "invalid_length",
    "too_long": "invalid_length",
    "string_too_short": "invalid_length",
    "string_too_long": "invalid_length",
    "string_pattern_mismatch": "invalid_format",
}


def path_of(loc: tuple[int | str, ...]) -> str:
    """("rules", 2, "effect", "multiplier", "factor") -> "rules[2].effect.factor" (union tags dropped)."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (previous == "effect" and part in EFFECT_TYPES) and not part.startswith("function-"):
            out += f".{part}" if out else part
        previous = part
    return out or "document"


def _code(error: Any) -> tuple[str, str]:
    kind, message = str(error["type"]), str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error" and ":" in message:
        head, _, rest = message.partition(":")
        if head.replace("_", "").isalpha() and head.islower():
            return head, rest.strip()
    if kind in _PYDANTIC_CODES:
        return _PYDANTIC_CODES[kind], message
    return ("invalid_type" if kind.endswith(("_parsing", "_type")) else "invalid_value"), message


def refuse(problems: list[dict[str, str]]) -> InvalidInput:
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return InvalidInput(
        first["code"],
        f"The rules were not applied: {first['field']}: {first['message']}{more}.",
        field=first["field"],
        errors=problems,
    )


def parse_text(text: str) -> RuleSetDocument:
    """A YAML or JSON rules file (JSON is YAML), checked whole."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InvalidInput("invalid_rules_file", f"This is not valid YAML or JSON{where}.", field="document") from None
    except RecursionError:
        problem = f"This is not valid YAML or JSON: {TOO_DEEP}."
        raise InvalidInput("invalid_rules_file", problem, field="document") from None
    except ValueError as exc:  # a date that does not exist (2026-13-01): YAML reads it as a date, and fails
        line = bad_value_line(text)
        where = f" at line {line}" if line is not None else ""
        raise InvalidInput(
            "invalid_rules_file", f"This is not valid YAML or JSON{where}: {exc}.", field="document"
        ) from None
    refuse_duplicate_keys(text)
    if data is None:  # an empty file (truncated by a `>`?) would remove every rule at a stroke
        raise InvalidInput(
            "empty_document",
            "The rules file is empty: nothing was applied. To remove every rule on purpose, write `rules: []`.",
            field="document",
        )
    return parse_data(data)


def refuse_duplicate_keys(text: str) -> None:
    """Refuse a rules file or JSON body with a field written twice in one place: YAML and JSON keep the last of
    the two without a word (a second ``conditions`` pasted under a rule drops the first): which one was meant is
    the writer's call."""
    twice = duplicate_keys(text)
    if twice:
        raise refuse(
            [
                {
                    "field": field,
                    "code": "duplicate_key",
                    "message": "written twice in the same place, "
                    + (f"at lines {first} and {again}" if first != again else f"on line {first}")
                    + ": keep one",
                }
                for field, first, again in twice
            ]
        )


def parse_data(data: Any) -> RuleSetDocument:
    if not isinstance(data, dict):
        raise InvalidInput(
            "invalid_rules_file", "A rules file is a mapping with actions, campaigns and rules.", field="document"
        )
    try:
        document = RuleSetDocument.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            code, message = _code(error)
            problems.append({"field": path_of(error_location(error)), "code": code, "message": message})
        raise refuse(problems) from None
    check_document(document)
    return document


# What ``attributes`` may test, with the values members can have (the rules' context reads these): a rule
# naming another, or a value no member has ("03", "FR"), would never apply and nobody would be told.
MEMBER_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "language": ("fr", "en"),
    "enrolment_channel": ("web", "store", "phone", "app", "partner"),
    "birthday_month": tuple(str(month) for month in range(1, 13)),
}


def check_document(document: RuleSetDocument) -> None:
    """What one field cannot tell: references, duplicates, conditions that do not fit the event."""
    problems: list[dict[str, str]] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append({"field": field, "code": code, "message": message})

    sections = {
        "actions": [a.id for a in document.actions],
        "campaigns": [c.id for c in document.campaigns],
        "rules": [r.id for r in document.rules],
    }
    for section, ids in sections.items():
        seen: set[str] = set()
        for i, id_ in enumerate(ids):
            if id_ in seen:
                problem(f"{section}[{i}].id", "duplicate_id", f"{id_!r} is used twice in {section}")
            seen.add(id_)
    campaigns = {c.id: c for c in document.campaigns}
    actions = {a.id for a in document.actions}
    for i, rule in enumerate(document.rules):
        at = f"rules[{i}]"
        if rule.campaign is not None and rule.campaign not in campaigns:
            problem(f"{at}.campaign", "unknown_campaign", f"no campaign {rule.campaign!r} in this document")
        if rule.effect.type not in EFFECTS_FOR[rule.event]:
            allowed = ", ".join(EFFECTS_FOR[rule.event])
            problem(
                f"{at}.effect.type", "effect_not_applicable", f"for event {rule.event} the effect can be: {allowed}"
            )
        conditions = rule.conditions
        if rule.event != "purchase":
            for name in PURCHASE_ONLY:
                if getattr(conditions, name) is not None:
                    problem(f"{at}.conditions.{name}", "condition_not_applicable", f"{name} only applies to purchases")
        for name, value in (conditions.attributes or {}).items():
            where = f"{at}.conditions.attributes.{name}"
            values = MEMBER_ATTRIBUTES.get(name)
            if values is None or value not in values:  # the choices quoted, as pydantic says them
                choices = ", ".join(f"'{choice}'" for choice in (MEMBER_ATTRIBUTES if values is None else values))
                what = "a member attribute" if values is None else name
                problem(where, "invalid_choice", f"Input should be {what}: {choices}")
        if rule.event in ("birthday", "anniversary") and conditions.channels is not None:
            problem(
                f"{at}.conditions.channels", "condition_not_applicable",
                f"a {rule.event} gift has no channel: test attributes.enrolment_channel for where the member joined",
            )  # fmt: skip
        if conditions.actions is not None:
            if rule.event != "action":
                problem(f"{at}.conditions.actions", "condition_not_applicable", "actions only applies to event: action")
            for j, action in enumerate(conditions.actions):
                if action not in actions:
                    problem(f"{at}.conditions.actions[{j}]", "unknown_action", f"no action type {action!r}")
    problems += _overlapping_exclusives(document, campaigns)
    problems += _exclusive_multipliers_with_nothing_to_multiply(document)
    if problems:
        raise refuse(problems)


def _overlapping_exclusives(document: RuleSetDocument, campaigns: dict[str, Campaign]) -> list[dict[str, str]]:
    """Two exclusive rules of one event and one priority that can be in force at once: which wins is unclear."""
    found = []
    exclusive = [(i, r) for i, r in enumerate(document.rules) if r.exclusive]
    for n, (i, rule) in enumerate(exclusive):
        for _, other in exclusive[:n]:
            if other.event != rule.event or other.priority != rule.priority:
                continue
            a, b = campaigns.get(rule.campaign or ""), campaigns.get(other.campaign or "")
            if (a is None or b is None or _overlap(a, b)) and _can_meet(rule.conditions, other.conditions):
                found.append(
                    {
                        "field": f"rules[{i}].exclusive",
                        "code": "overlapping_exclusive_rules",
                        "message": f"rules {other.id!r} and {rule.id!r} are both exclusive, with the same "
                        "priority, at overlapping times: give one a higher priority",
                    }
                )
    return found


def _exclusive_multipliers_with_nothing_to_multiply(document: RuleSetDocument) -> list[dict[str, str]]:
    """An exclusive multiplier on purchases that runs before every points-per-amount rule stops them all, so it
    multiplies nothing: "double points, not with other offers" would make a purchase earn no points at all."""
    found = []
    ordered = sorted(enumerate(document.rules), key=lambda item: (-item[1].priority, item[0]))
    for n, (i, rule) in enumerate(ordered):
        if not (rule.exclusive and rule.event == "purchase" and isinstance(rule.effect, Multiplier)):
            continue
        if not any(r.event == "purchase" and isinstance(r.effect, PointsPerAmount) for _, r in ordered[:n]):
            found.append(
                {
                    "field": f"rules[{i}].exclusive",
                    "code": "nothing_to_multiply",
                    "message": f"{rule.id!r} is exclusive and runs before every points-per-amount rule, so it would "
                    "stop them and multiply nothing: give it a lower priority than the rules it multiplies",
                }
            )
    return found


def _can_meet(a: Conditions, b: Conditions) -> bool:
    """Whether one event can meet both rules' dates, channels and weekdays (a condition left out meets any):
    Black Friday's dates and Christmas's, or the web shop and the stores, never meet."""
    if a.dates and b.dates and (a.dates.end < b.dates.start or b.dates.end < a.dates.start):
        return False
    for name in ("channels", "weekdays"):
        mine, theirs = getattr(a, name), getattr(b, name)
        if mine is not None and theirs is not None and not set(mine) & set(theirs):
            return False
    return True


def _overlap(a: Campaign, b: Campaign) -> bool:
    def naive(value: datetime) -> datetime:
        return value.replace(tzinfo=None)  # an approximation when offsets differ: errs towards reporting

    return naive(a.starts) < naive(b.until) and naive(b.starts) < naive(a.until)


def dump_yaml(document: RuleSetDocument) -> str:
    data = json.loads(document.model_dump_json(exclude_none=True, exclude_defaults=False))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
