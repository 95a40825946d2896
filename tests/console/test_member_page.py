"""The console's member page over HTTP: a long history is read 50 lines at a time, older pages on demand."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.api.helpers import ApiProgram
from tests.console.conftest import sign_in


def test_a_long_history_pages_to_its_older_lines_and_back_to_the_latest(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    for n in range(1, 53):
        program.adjust(ann["id"], n, reason=f"Geste numéro {n}")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    latest = client.get(f"/console/members/{ann['id']}").text
    assert "Geste numéro 52</td>" in latest and "Geste numéro 3</td>" in latest and "Geste numéro 2</td>" not in latest
    assert "Les plus récents" not in latest
    older = re.search(rf'href="(/console/members/{ann["id"]}\?before=txn_\w+)">Plus ancien</a>', latest)
    assert older, "no link to the older lines"
    page = client.get(older.group(1)).text
    assert "Geste numéro 2</td>" in page and "Geste numéro 1</td>" in page and "Geste numéro 3</td>" not in page
    assert "Plus ancien" not in page  # the first lines: nothing older
    assert f'href="/console/members/{ann["id"]}">Les plus récents</a>' in page
    assert "Geste numéro 52" in client.get(f"/console/members/{ann['id']}?before=nonsense").text  # the latest


def test_a_history_cell_with_no_change_reads_zero_not_a_dot(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 40, reason="Geste")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get(f"/console/members/{ann['id']}").text
    row = re.search(r"<tr><td[^>]*>[^<]*</td><td[^>]*>Ajustement — Geste</td>(.*?)</tr>", page, re.S)
    assert row, "no adjustment line"
    read = [re.sub(r'<span class="muted" aria-hidden="true">[^<]*</span>|<[^>]+>', "", cell)
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row[1])]  # fmt: skip
    assert read == ["+40", "0", "0"]  # what a screen reader says: available, pending, held
