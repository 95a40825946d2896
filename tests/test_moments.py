"""Every date and time a client sends is a ``Moment``: 1970 to 2999 once in UTC, else ``date_out_of_range``.

The last test walks every model a client fills in, so a new datetime field that forgets it is caught here."""

from __future__ import annotations

import importlib
import json
import pkgutil
import types
import typing
from datetime import datetime
from typing import Any

import pytest
from pydantic import AfterValidator, BaseModel, TypeAdapter, ValidationError

import palier
from palier.clock import Moment

MOMENT = TypeAdapter(Moment)
SERVER_STAMPED = {"created_at", "updated_at", "refreshed_at"}  # on models the server fills in and reads back


@pytest.mark.parametrize(
    "sent",
    ["1970-01-01T00:00:00Z", "2026-03-02T09:00:00+01:00", "2999-12-31T23:59:59Z", "2026-06-01T08:00:00"],
)
def test_moments_a_program_can_mean_pass_as_sent(sent: str) -> None:
    assert MOMENT.validate_python(sent) == datetime.fromisoformat(sent.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    "sent",
    ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z"],
)
def test_moments_outside_1970_to_2999_are_date_out_of_range(sent: str) -> None:
    with pytest.raises(ValidationError, match="date_out_of_range"):
        MOMENT.validate_python(sent)


@pytest.mark.parametrize("sent", [0, 1764900000, 1764900000000, 1764900000.5, "1764900000", " 0 ", True])
def test_a_number_is_no_moment(sent: object) -> None:
    """pydantic would read 0 as 1970 and 13 digits as milliseconds: a till sending a counter would date a
    purchase silently wrong."""
    with pytest.raises(ValidationError, match="invalid_type"):
        MOMENT.validate_python(sent)
    with pytest.raises(ValidationError, match="invalid_type"):
        MOMENT.validate_json(json.dumps(sent))


def _bare_datetimes(model: type[BaseModel], path: str, seen: set[type]) -> list[str]:
    """The fields under ``model`` typed ``datetime`` without Moment's check."""
    if model in seen:
        return []
    seen.add(model)
    found = []
    for name, field in model.model_fields.items():
        checked = any(isinstance(m, AfterValidator) and m is Moment.__metadata__[0] for m in field.metadata)
        found += _in_annotation(field.annotation, f"{path}.{name}", checked, seen)
    return found


def _in_annotation(annotation: Any, path: str, checked: bool, seen: set[type]) -> list[str]:
    if annotation is datetime:
        return [] if checked else [path]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _bare_datetimes(annotation, path, seen)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return _in_annotation(base, path, checked or Moment.__metadata__[0] in metadata, seen)
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        return [bad for arg in typing.get_args(annotation) for bad in _in_annotation(arg, path, checked, seen)]
    return []


def _models(base: type[BaseModel]) -> list[type[BaseModel]]:
    found = []
    for sub in base.__subclasses__():
        found += [sub, *_models(sub)]
    return found


def test_every_datetime_a_client_sends_is_a_moment() -> None:
    """Models that refuse unknown fields are what clients send (API bodies, rule and reward files, imports)."""
    for module in pkgutil.walk_packages(palier.__path__, "palier."):
        importlib.import_module(module.name)
    models = [m for m in _models(BaseModel) if m.__module__.startswith("palier.")]
    sent = {m for m in models if m.model_config.get("extra") == "forbid"}
    assert {"PurchaseIn", "ActionIn", "InvitationsIn"} <= {m.__name__ for m in sent}
    bare = [path for model in sorted(sent, key=repr) for path in _bare_datetimes(model, model.__name__, set())]
    assert [path for path in bare if path.rsplit(".", 1)[1] not in SERVER_STAMPED] == []


def test_a_moment_without_an_offset_is_the_programs_wall_clock_time() -> None:
    from datetime import UTC

    from palier.clock import in_zone

    assert in_zone(datetime(2026, 8, 31, 0, 30), "Europe/Paris") == datetime(2026, 8, 30, 22, 30, tzinfo=UTC)
    assert in_zone(datetime(2026, 1, 15, 9, 0), "America/New_York") == datetime(2026, 1, 15, 14, 0, tzinfo=UTC)
    sent = datetime.fromisoformat("2026-08-31T00:30:00+00:00")
    assert in_zone(sent, "Europe/Paris") == sent  # an offset sent is kept
