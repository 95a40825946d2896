"""The KPI dashboard over HTTP: with a channel chosen, each member figure says what it counts."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.api.helpers import ApiProgram, line, return_body
from tests.console.conftest import sign_in


def _kpi_heading(page: str, kpi: str) -> str:
    card = page[: page.index(f'data-kpi="{kpi}"')]
    return card[card.rindex("<h2>") + 4 : card.rindex("</h2>")]


def test_with_a_channel_chosen_members_say_they_joined_there_and_active_members_that_they_bought_there(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    online = program.enrol(first_name="Ann", channel="web")  # joined online, buys in store
    program.purchase(online["id"], occurred_at="2026-03-01T10:00:00Z")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    everywhere = client.get("/console/dashboard").text
    assert (_kpi_heading(everywhere, "members"), _kpi_heading(everywhere, "active")) == ("Membres", "Membres actifs")
    store = client.get("/console/dashboard", params={"channel": "store"}).text
    assert 'data-kpi="members" style="--chars: 1">0</p>' in store  # nobody joined in store…
    assert 'data-kpi="active" style="--chars: 1">1</p>' in store  # …but Ann bought there
    assert _kpi_heading(store, "members") == "Membres inscrits via : Magasin"
    assert _kpi_heading(store, "active") == "Membres ayant acheté via : Magasin"
    assert "quel que soit le canal d&#39;inscription" in store
    english = client.get("/console/dashboard", params={"channel": "store", "lang": "en"}).text
    assert _kpi_heading(english, "members") == "Members who joined via: Store"


def test_dates_at_the_ends_of_the_calendar_are_refused_in_words_not_a_server_error(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    for first, last in (("9999-12-30", "9999-12-31"), ("0001-01-01", "0001-01-02")):
        page = client.get("/console/dashboard", params={"first": first, "last": last})
        assert page.status_code == 200
        assert "Ces dates ne sont pas valides : voici les 12 dernières semaines." in page.text


def test_refused_dates_say_how_many_weeks_are_shown_instead(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """The form sends the preset chosen with the dates: refused dates fall back on it, and the notice says so."""
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    reversed_dates = {"weeks": "4", "first": "2026-05-01", "last": "2026-04-01"}
    page = client.get("/console/dashboard", params=reversed_dates).text
    assert "La date de début est après la date de fin : voici les 4 dernières semaines." in page
    english = client.get("/console/dashboard", params={**reversed_dates, "first": "2026-02-30", "lang": "en"}).text
    assert "These dates are not valid: here are the last 4 weeks." in english
    assert "here are the last 12 weeks." in client.get("/console/dashboard", params={"first": "x", "lang": "en"}).text


def test_counts_agree_with_their_number_in_french(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """1 new member is "1 nouveau", and 0 or 1 point redeemed or expired is "0 utilisé · 0 expiré" in French."""
    program.enrol(first_name="Ann")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get("/console/dashboard").text
    assert "dont 1 nouveau sur la période" in page and "0 utilisé · 0 expiré" in page
    english = client.get("/console/dashboard", params={"lang": "en"}).text
    assert "1 joined in the period" in english and "0 redeemed · 0 expired" in english


def test_points_debited_by_hand_show_beside_those_redeemed_and_expired(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    """1 000 issued, 250 debited by hand, 750 held: the page's figures add up."""
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 1_000)
    program.adjust(ann["id"], -250, reason="Entered twice")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get("/console/dashboard").text
    assert "0 utilisé · 0 expiré · 250 débités" in page and "750 points chez les membres" in page
    assert '<th scope="col" class="num">Débités</th>' in page and '<td class="num">250</td>' in page
    assert '"debited": "D\\u00e9bit\\u00e9s"' in page  # the chart's series
    english = client.get("/console/dashboard", params={"lang": "en"}).text
    assert "0 redeemed · 0 expired · 250 debited" in english


def test_points_members_owe_show_under_the_liability(
    client: TestClient, new_program: Callable[..., ApiProgram], add_staff: Callable[..., str]
) -> None:
    """Points spent, then their order returned: the member owes them, which the liability card says."""
    program = new_program(return_window_days=0)
    ann = program.enrol(first_name="Ann")
    program.purchase(ann["id"], order_id="D-1", lines=[line("A", 5_000)])  # 50 points, available at once
    program.adjust(ann["id"], -50, reason="Spent at a partner")
    returned = program.call("POST", "/v1/events/returns", json=return_body("D-1", lines=[{"sku": "A", "quantity": 1}]))
    assert returned.status_code == 201, returned.text
    assert program.balance(ann["id"])["debt"] == 50
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get("/console/dashboard").text
    assert "0 point chez les membres · 50 points à rembourser par des membres" in page
    english = client.get("/console/dashboard", params={"lang": "en"}).text
    assert "0 points held by members · 50 points for members to repay" in english


def test_with_a_channel_chosen_no_points_debited_are_shown_since_they_have_no_channel(
    client: TestClient, program: ApiProgram, add_staff: Callable[..., str]
) -> None:
    ann = program.enrol(first_name="Ann")
    program.adjust(ann["id"], 1_000)
    program.adjust(ann["id"], -250, reason="Entered twice")
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    store = client.get("/console/dashboard", params={"channel": "store"}).text
    assert "0 utilisé · 0 expiré</p>" in store and "débité" not in store and "Débités" not in store
    assert '"debited": null' in store  # no series in the chart


def test_what_members_owe_is_in_the_programs_points_name(
    client: TestClient, new_program: Callable[..., ApiProgram], add_staff: Callable[..., str]
) -> None:
    program = new_program(return_window_days=0, points_name="étoiles")
    ann = program.enrol(first_name="Ann")
    program.purchase(ann["id"], order_id="E-1", lines=[line("A", 3_000)])
    program.adjust(ann["id"], -30, reason="Spent at a partner")
    returned = program.call("POST", "/v1/events/returns", json=return_body("E-1", lines=[{"sku": "A", "quantity": 1}]))
    assert returned.status_code == 201, returned.text
    assert sign_in(client, add_staff(program.id, "admin")).status_code == 303
    page = client.get("/console/dashboard").text
    assert "30 étoiles à rembourser par des membres (un retour a repris ce qu&#39;ils avaient déjà dépensé)" in page
    assert "points" not in page[page.index('data-kpi="liability"') : page.index('data-kpi="redemption-rate"')]
