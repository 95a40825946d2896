"""Every text box of the console and the till takes as many characters as the service accepts: no more (the
browser would send what the server refuses), no fewer (a valid name would not fit)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, get_args

from annotated_types import MaxLen
from fastapi.testclient import TestClient
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from palier.activity.models import AdjustmentIn
from palier.members.models import MemberCreate
from palier.programs.models import ProgramUpdate
from palier.rewards.models import CouponUse, Localized, LocalizedLong, RewardUpdate
from palier.staff.models import StaffCreate
from tests.api.helpers import ApiProgram, reward_body
from tests.console.conftest import sign_in


def model_limit(model: type[BaseModel], name: str) -> int:
    """The longest value the model's field takes (set on the field, or on its type: ``PersonName | None``)."""
    field = model.model_fields[name]
    found = _max_lengths(field.metadata) + _max_lengths([field.annotation])
    assert found, f"{model.__name__}.{name} has no length limit"
    return found[0]


def _max_lengths(items: list[Any]) -> list[int]:
    found = []
    for item in items:
        if isinstance(item, MaxLen):
            found.append(item.max_length)
        elif isinstance(item, FieldInfo):
            found += _max_lengths(item.metadata)
        else:
            found += _max_lengths([*get_args(item), *getattr(item, "__metadata__", ())])
    return found


def page_limit(html: str, name: str) -> int | None:
    """The maxlength of the page's text box called ``name``."""
    tag = re.search(rf'<(?:input|textarea)[^>]*\bname="{name}"[^>]*>', html)
    assert tag, f"no input {name}"
    found = re.search(r'maxlength="?(\d+)', tag.group(0))
    return int(found.group(1)) if found else None


def test_every_text_box_takes_what_the_service_takes(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    member = program.enrol(first_name="Ann")
    reward = program.call("POST", "/v1/rewards", json=reward_body()).json()
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    pages: dict[str, dict[str, tuple[type[BaseModel], str]]] = {
        "/till/new-member": {
            "first_name": (MemberCreate, "first_name"),
            "last_name": (MemberCreate, "last_name"),
            "email": (MemberCreate, "email"),
            "phone": (MemberCreate, "phone"),
        },
        f"/till/members/{member['id']}": {"order_id": (CouponUse, "order_id")},
        f"/console/members/{member['id']}": {"reason": (AdjustmentIn, "reason")},
        f"/console/rewards/{reward['id']}": {
            "title_fr": (Localized, "fr"),
            "title_en": (Localized, "en"),
            "description_fr": (LocalizedLong, "fr"),
            "description_en": (LocalizedLong, "en"),
            "image_url": (RewardUpdate, "image_url"),
        },
        "/console/settings": {"name": (ProgramUpdate, "name"), "points_name": (ProgramUpdate, "points_name")},
        "/console/staff": {"display_name": (StaffCreate, "display_name"), "password": (StaffCreate, "password")},
    }
    for path, fields in pages.items():
        html = client.get(path).text
        for name, (model, field) in fields.items():
            assert page_limit(html, name) == model_limit(model, field), f"{path} {name}"
