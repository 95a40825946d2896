"""Earning rules over HTTP: apply (refused whole with paths), export, versions, actions, preview, how to earn."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palier.clock import FrozenClock
from tests.api.helpers import ApiProgram, assert_problem, footprint, line, luhn_card, purchase_body, return_body

RULES: dict[str, Any] = {
    "actions": [
        {
            "id": "review",
            "name": {"en": "Product review", "fr": "Avis produit"},
            "points": 15,
            "limit": {"count": 1, "per": "week"},
        }
    ],
    "campaigns": [
        {
            "id": "weekend",
            "name": {"en": "Double points weekend"},
            "starts": "2026-03-07T00:00:00",
            "ends": "2026-03-09T00:00:00",
            "budget": 5000,
        }
    ],
    "rules": [
        {
            "id": "base",
            "name": {"en": "1 point per euro", "fr": "1 point par euro"},
            "event": "purchase",
            "effect": {"type": "points_per_amount", "points": 1, "per_amount": 100},
        },
        {
            "id": "weekend-x2",
            "name": {"en": "Double points weekend", "fr": "Week-end double"},
            "event": "purchase",
            "campaign": "weekend",
            "effect": {"type": "multiplier", "factor": 2},
        },
        {
            "id": "pastry",
            "name": {"en": "Pastry bonus", "fr": "Bonus viennoiserie"},
            "event": "purchase",
            "conditions": {"categories": ["viennoiserie"]},
            "effect": {"type": "per_item", "points": 2},
        },
    ],
}


def apply(program: ApiProgram, document: dict[str, Any]) -> Any:
    return program.call("POST", "/v1/program/rules", json=document)


def test_apply_export_and_versions(program: ApiProgram) -> None:
    assert program.call("GET", "/v1/program/rules").json()["version"] == 0
    applied = apply(program, RULES)
    assert applied.status_code == 201, applied.text
    assert applied.json()["version"] == 1
    exported = program.call("GET", "/v1/program/rules").json()
    assert exported["version"] == 1 and [r["id"] for r in exported["document"]["rules"]] == [
        "base",
        "weekend-x2",
        "pastry",
    ]
    again = apply(program, exported["document"])  # the export applies as it is: the same rules, no new version
    assert (again.status_code, again.json()["version"]) == (200, 1)
    changed = {**exported["document"], "campaigns": [{**RULES["campaigns"][0], "budget": 6000}]}
    assert apply(program, changed).json()["version"] == 2
    versions = program.call("GET", "/v1/program/rules/versions").json()
    assert [v["version"] for v in versions["items"]] == [2, 1] and versions["items"][1]["actor"].startswith("key_")
    assert versions["next_cursor"] is None
    assert program.call("GET", "/v1/program").json()["rules_version"] == 2


def test_rules_saved_by_another_client_since_they_were_read_are_not_overwritten(program: ApiProgram) -> None:
    """Two scripts (or a script and the console) read version 1 and each change it: the second to save, naming
    the version it read (``based_on``), is refused with the version now in force, rather than dropping the
    first's campaign; nothing is applied, and the same key sent on with another version is another request."""
    assert apply(program, RULES).status_code == 201
    read = program.call("GET", "/v1/program/rules").json()
    assert read["version"] == 1
    theirs = {**read["document"], "rules": read["document"]["rules"][:1]}
    assert program.call("POST", "/v1/program/rules?based_on=1", json=theirs).json()["version"] == 2
    mine = {**read["document"], "campaigns": []}
    mine["rules"] = [r for r in read["document"]["rules"] if r["id"] != "weekend-x2"]
    stale = program.call("POST", "/v1/program/rules?based_on=1", json=mine, idempotency_key="rules-mine")
    assert_problem(stale, 409, "rules_changed", field="document")
    assert (stale.json()["version"], stale.json()["based_on"]) == (2, 1)
    assert program.call("GET", "/v1/program/rules").json()["version"] == 2
    again = program.call("POST", "/v1/program/rules?based_on=2", json=mine, idempotency_key="rules-mine")
    assert_problem(again, 409, "idempotency_key_reused")
    saved = program.call("POST", "/v1/program/rules?based_on=2", json=mine)
    assert saved.status_code == 201 and saved.json()["version"] == 3
    assert_problem(program.call("POST", "/v1/program/rules?based_on=-1", json=mine), 422, "out_of_range", "based_on")


def test_saving_the_rules_in_force_unchanged_makes_no_version(program: ApiProgram) -> None:
    """A merchant who opens the rules and saves without a change, or a deploy script that applies its rules
    file on every release, does not fill the versions and the audit trail with copies: the answer is the
    version in force, 200 rather than 201; a real change after it is the next version."""
    assert apply(program, RULES).status_code == 201
    before = program.call("GET", "/v1/audit?limit=100").json()["items"]
    for _ in range(2):
        same = program.call("POST", "/v1/program/rules?based_on=1", json=RULES)
        assert same.status_code == 200, same.text
        assert same.json()["version"] == 1
    assert [v["version"] for v in program.call("GET", "/v1/program/rules/versions").json()["items"]] == [1]
    assert program.call("GET", "/v1/audit?limit=100").json()["items"] == before
    assert program.call("GET", "/v1/program").json()["rules_version"] == 1
    assert apply(program, {**RULES, "campaigns": []} | {"rules": RULES["rules"][:1]}).json()["version"] == 2


def test_rule_versions_come_a_page_at_a_time_newest_first(program: ApiProgram) -> None:
    """A program saving its rules every day for years has thousands of versions, each a whole document: they
    come a page at a time, newest first, as the audit trail does."""
    for budget in range(1, 6):
        assert apply(program, {**RULES, "campaigns": [{**RULES["campaigns"][0], "budget": budget}]}).status_code == 201
    first = program.call("GET", "/v1/program/rules/versions?limit=2").json()
    assert [v["version"] for v in first["items"]] == [5, 4] and first["next_cursor"]
    second = program.call("GET", f"/v1/program/rules/versions?limit=2&cursor={first['next_cursor']}").json()
    assert [v["version"] for v in second["items"]] == [3, 2]
    last = program.call("GET", f"/v1/program/rules/versions?limit=2&cursor={second['next_cursor']}").json()
    assert [v["version"] for v in last["items"]] == [1] and last["next_cursor"] is None
    for bad in ("abc", "0", "-1", "99"):
        refused = program.call("GET", f"/v1/program/rules/versions?cursor={bad}")
        assert_problem(refused, 422, "invalid_cursor", field="cursor")
    assert_problem(program.call("GET", "/v1/program/rules/versions?limit=0"), 422, "out_of_range", field="limit")


def test_once_rules_are_applied_the_base_rate_is_changed_in_them_not_in_the_settings(program: ApiProgram) -> None:
    """The rules' rate decides what a purchase earns: a settings rate changed beside them would change nothing
    while the console and how-it-works page went on showing one or the other."""
    assert program.call("PATCH", "/v1/program", json={"earn_points": 2}).json()["earn_points"] == 2  # no rules yet
    assert program.call("PATCH", "/v1/program", json={"earn_points": 1}).status_code == 200
    apply(program, RULES)
    refused = program.call("PATCH", "/v1/program", json={"return_window_days": 7, "earn_per_amount": 50})
    body = assert_problem(refused, 409, "rate_set_by_rules", field="earn_per_amount")
    assert body["rules_version"] == 1
    now = program.call("GET", "/v1/program").json()
    assert (now["earn_points"], now["earn_per_amount"], now["return_window_days"]) == (1, 100, 14)  # nothing saved
    same = program.call("PATCH", "/v1/program", json={"earn_points": 1, "return_window_days": 7})  # unchanged rate
    assert same.status_code == 200 and same.json()["return_window_days"] == 7


def test_a_bad_document_is_refused_whole_with_the_path_and_nothing_applied(program: ApiProgram) -> None:
    before = footprint(program.client.app.state.db, program.id)
    bad = {
        **RULES,
        "rules": [*RULES["rules"], {**RULES["rules"][2], "id": "p2", "conditions": {"weekdays": ["funday"]}}],
    }
    assert_problem(apply(program, bad), 422, "invalid_choice", field="rules[3].conditions.weekdays[0]")
    unknown = {**RULES, "rules": [{**RULES["rules"][1], "campaign": "summer"}]}
    body = assert_problem(apply(program, unknown), 422, "unknown_campaign", field="rules[0].campaign")
    assert body["errors"][0]["field"] == "rules[0].campaign"
    negative = {"rules": [{**RULES["rules"][1], "effect": {"type": "multiplier", "factor": -1}}]}
    assert_problem(apply(program, negative), 422, "out_of_range", field="rules[0].effect.factor")
    carded = {**RULES, "actions": [{**RULES["actions"][0], "name": {"en": "Review", "fr": f"Carte {luhn_card()}"}}]}
    assert_problem(apply(program, carded), 422, "card_number_in_text", field="actions[0].name.fr")  # shown publicly
    sku = {"rules": [{**RULES["rules"][2], "conditions": {"skus": [luhn_card()]}}]}
    assert_problem(apply(program, sku), 422, "card_number_in_text", field="rules[0].conditions.skus[0]")
    assert footprint(program.client.app.state.db, program.id) == before


def test_a_body_that_is_not_a_rules_document_names_the_document_as_the_field(program: ApiProgram) -> None:
    for body in ([RULES], "rules", 3):
        assert_problem(apply(program, body), 422, "invalid_rules_file", field="document")
    assert program.call("GET", "/v1/program/rules").json()["version"] == 0


def test_a_rule_for_a_tier_or_segment_the_program_does_not_have_is_refused_rather_than_never_applying(
    program: ApiProgram,
) -> None:
    """ "Gold" for the tier coded gold, or top-10 for the segment top10: such a rule would pay nobody, while how
    to earn told every member about it."""
    gold = {"code": "gold", "name": {"fr": "Or", "en": "Gold"}, "threshold": 0}
    assert program.call("PUT", "/v1/tiers", json={"metric": "spend", "tiers": [gold]}).status_code == 200
    top = {"code": "top10", "name": {"fr": "Top", "en": "Top"}, "kind": "top_revenue", "percent": 10}
    assert program.call("POST", "/v1/segments", json=top).status_code == 201
    base = RULES["rules"][0]
    typos = {**base, "id": "vip", "conditions": {"tiers": ["gold", "Gold"], "segments": ["top-10"]}}
    body = assert_problem(apply(program, {"rules": [base, typos]}), 422, "unknown_tier", "rules[1].conditions.tiers[1]")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [
        ("rules[1].conditions.tiers[1]", "unknown_tier"),
        ("rules[1].conditions.segments[0]", "unknown_segment"),
    ]
    assert "gold" in body["errors"][0]["message"] and "top10" in body["errors"][1]["message"]  # what there is
    assert program.call("GET", "/v1/program/rules").json()["version"] == 0
    right = {**typos, "conditions": {"tiers": ["gold"], "segments": ["top10"]}}
    assert apply(program, {"rules": [base, right]}).status_code == 201


def test_an_exclusive_multiplier_above_every_rule_it_would_multiply_is_refused(program: ApiProgram) -> None:
    """ "Double points, not with other offers" at a higher priority than the base rule would stop the base rule
    and multiply nothing: every purchase would earn no points."""
    base = {**RULES["rules"][0], "priority": 100}
    double = {**RULES["rules"][1], "campaign": None, "exclusive": True, "priority": 200}
    del double["campaign"]
    assert_problem(apply(program, {"rules": [base, double]}), 422, "nothing_to_multiply", field="rules[1].exclusive")
    assert apply(program, {"rules": [base, {**double, "priority": 50}]}).status_code == 201


def test_an_attribute_no_member_has_is_refused_rather_than_never_applying(program: ApiProgram) -> None:
    def bonus(attributes: dict[str, str]) -> dict[str, Any]:
        return {"rules": [{**RULES["rules"][0], "conditions": {"attributes": attributes}}]}

    assert_problem(apply(program, bonus({"langauge": "fr"})), 422, "invalid_choice",
                   field="rules[0].conditions.attributes.langauge")  # fmt: skip
    assert_problem(apply(program, bonus({"birthday_month": "03"})), 422, "invalid_choice",
                   field="rules[0].conditions.attributes.birthday_month")  # fmt: skip
    assert apply(program, bonus({"birthday_month": "3", "language": "fr"})).status_code == 201


def test_an_order_too_large_or_earning_absurdly_many_points_is_refused_whole(program: ApiProgram) -> None:
    """A price typed with too many zeros, or a rule's typo, never mints billions of points (nor overflows)."""
    member = program.enrol(first_name="Zoé")
    huge = [line("TV", 10**11, 10_000)]
    sent = program.call("POST", "/v1/events/purchases", json=purchase_body(member["id"], lines=huge))
    assert_problem(sent, 422, "order_too_large", field="lines")
    assert_problem(program.call("POST", "/v1/preview", json={"lines": huge}), 422, "order_too_large", field="lines")
    typo = {"id": "base", "name": {"en": "Base"}, "event": "purchase",
            "effect": {"type": "points_per_amount", "points": 100_000, "per_amount": 1}}  # fmt: skip
    assert apply(program, {"rules": [typo]}).status_code == 201
    before = footprint(program.client.app.state.db, program.id)
    cart = [line("COAT", 100_000)]  # €1,000 at 100,000 points a cent: 10 billion points
    body = assert_problem(program.call("POST", "/v1/preview", json={"lines": cart}), 422, "points_too_large", "lines")
    assert body["points"] == 10**10
    sent = program.call("POST", "/v1/events/purchases", json=purchase_body(member["id"], lines=cart))
    assert_problem(sent, 422, "points_too_large", field="lines")
    assert footprint(program.client.app.state.db, program.id) == before
    assert program.call("POST", "/v1/preview", json={"lines": [line("PEN", 100)]}).json()["points"] == 10_000_000


def test_a_field_sent_twice_in_the_rules_json_is_refused_not_read_as_the_last(program: ApiProgram) -> None:
    """JSON parsers keep the last of two keys: a second "conditions" in a rule would silently replace the first
    (the pastry bonus paid on every purchase). Refused with the path, as a rules file is; nothing applied."""
    text = (
        '{"rules": [{"id": "pastry", "name": {"en": "Pastry bonus"}, "event": "purchase",\n'
        ' "conditions": {"categories": ["viennoiserie"]},\n'
        ' "effect": {"type": "per_item", "points": 2},\n'
        ' "conditions": {"channels": ["store"]}}]}'
    )
    refused = program.call(
        "POST", "/v1/program/rules", content=text.encode(), headers={"Content-Type": "application/json"}
    )
    body = assert_problem(refused, 422, "duplicate_key", "rules[0].conditions")
    assert "lines 2 and 4" in body["errors"][0]["message"]
    assert program.call("GET", "/v1/program/rules").json()["version"] == 0


def test_a_weekend_purchase_earns_double_and_the_preview_said_so(program: ApiProgram) -> None:
    apply(program, RULES)
    member = program.enrol(first_name="Léa")
    cart = [line("CROISSANT", 130, 2, category="viennoiserie"), line("CAKE", 2050)]
    preview = program.call(
        "POST", "/v1/preview", json={"lines": cart, "at": "2026-03-07T10:00:00Z", "member_id": member["id"]}
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert [x["text"] for x in shown["lines"]] == [
        "1 point per euro: +23",
        "Pastry bonus +2/item: +4",
        "Double points weekend ×2: +23",
    ]
    assert shown["points"] == 50
    french = program.call(
        "POST", "/v1/preview", json={"lines": cart, "at": "2026-03-07T10:00:00Z", "language": "fr"}
    ).json()
    # in French words and typography, as how-to-earn writes them: "par article", a space before the colon
    assert [x["text"] for x in french["lines"]] == [
        "1 point par euro : +23",
        "Bonus viennoiserie +2/article : +4",
        "Week-end double ×2 : +23",
    ]
    today = program.call("POST", "/v1/preview", json={"lines": cart}).json()  # Monday 2 March: no weekend
    assert today["points"] == 27
    bought = program.purchase(member["id"], lines=cart, occurred_at="2026-03-02T09:00:00Z")
    assert bought["points"] == today["points"]
    assert [a["rule_id"] for a in bought["awards"]] == ["base", "pastry"]


def test_a_budget_and_cap_given_to_a_running_campaign_count_what_it_gave_before_them(
    program: ApiProgram, clock: FrozenClock
) -> None:
    """A launch runs without limits, costs more than planned, and the marketer gives it a budget of 100 points
    and a cap of 70 a member: the 50 points it already gave Léa count in both (20 more for her, then 30 for
    Hugo, not 100 more), and a return of her first order gives its 50 back to both, as to any capped order."""
    base = RULES["rules"][0]
    launch = {"id": "launch", "name": {"en": "Launch"}, "starts": "2026-03-01T00:00:00", "ends": "2026-04-01T00:00:00"}
    bonus = {**base, "id": "bonus", "name": {"en": "Launch bonus"}, "campaign": "launch"}
    assert apply(program, {"campaigns": [launch], "rules": [base, bonus]}).status_code == 201
    lea, hugo = program.enrol(first_name="Léa")["id"], program.enrol(first_name="Hugo")["id"]
    first = program.purchase(lea, lines=[line("BAG", 5000)])
    assert first["points"] == 100
    clock.advance(minutes=1)
    limited = {**launch, "budget": 100, "member_cap": 70}
    assert apply(program, {"campaigns": [limited], "rules": [base, bonus]}).status_code == 201

    def bonus_of(member: str) -> int:
        cart = [line("BAG", 5000)]
        shown = program.call("POST", "/v1/preview", json={"lines": cart, "member_id": member}).json()
        bought = program.purchase(member, lines=cart, occurred_at="2026-03-02T09:01:00Z")
        assert bought["points"] == shown["points"]
        return int(bought["points"]) - 50

    assert bonus_of(lea) == 20  # her cap: 70, of which the launch gave her 50 before it had one
    assert bonus_of(hugo) == 30  # the budget: 100, of which 50 + 20 are given
    assert bonus_of(hugo) == 0
    returned = program.call(
        "POST", "/v1/events/returns", json=return_body(first["external_id"], lines=[{"sku": "BAG", "quantity": 1}])
    )
    assert returned.status_code == 201, returned.text
    assert bonus_of(hugo) == 40  # the return gave 50 back to the budget; Hugo's cap leaves him 40 of them
    assert bonus_of(lea) == 10  # and 50 back to Léa's cap: the budget has 10 left for her


def test_a_budget_taken_off_and_given_again_counts_each_points_given_once(
    program: ApiProgram, clock: FrozenClock
) -> None:
    """Without a budget, with one, without, with one again: what it gave while it had none counts once, when a
    budget comes (50 before any, 50 under the first, 50 while it had none: 150 of a budget of 160, 10 left)."""
    base = RULES["rules"][0]
    launch = {"id": "launch", "name": {"en": "Launch"}, "starts": "2026-03-01T00:00:00", "ends": "2026-04-01T00:00:00"}
    bonus = {**base, "id": "bonus", "name": {"en": "Launch bonus"}, "campaign": "launch"}
    lea = program.enrol(first_name="Léa")["id"]

    def bonus_of_a_purchase() -> int:
        now = clock.now().isoformat()
        return int(program.purchase(lea, lines=[line("BAG", 5000)], occurred_at=now)["points"]) - 50

    found = []
    for budget in (None, 1000, None, 160):
        clock.advance(minutes=1)
        campaign = launch if budget is None else {**launch, "budget": budget}
        assert apply(program, {"campaigns": [campaign], "rules": [base, bonus]}).status_code == 201
        found.append(bonus_of_a_purchase())
    assert found == [50, 50, 50, 10]
    assert bonus_of_a_purchase() == 0


def test_a_multiplier_doubles_what_a_spent_campaign_budget_granted_in_the_preview_and_the_purchase(
    program: ApiProgram,
) -> None:
    base = RULES["rules"][0]
    flash = {"id": "flash2", "name": {"en": "Flash"}, "starts": "2026-03-01T00:00:00", "ends": "2026-04-01T00:00:00"}
    bonus = {**base, "id": "bonus", "name": {"en": "Flash bonus"}, "campaign": "flash2"}
    double = {"id": "double", "name": {"en": "Double points"}, "event": "purchase"}
    double["effect"] = {"type": "multiplier", "factor": 2}
    assert apply(program, {"campaigns": [{**flash, "budget": 10}], "rules": [base, bonus, double]}).status_code == 201
    member = program.enrol(first_name="Léa")
    cart = [line("BAG", 5000)]
    expected = [
        (["1 point per euro: +50", "Flash bonus: +10", "Double points ×2: +60"], 120),
        (["1 point per euro: +50", "Double points ×2: +50"], 100),  # the budget is spent
        (["1 point per euro: +50", "Double points ×2: +50"], 100),
    ]
    for texts, points in expected:
        shown = program.call("POST", "/v1/preview", json={"lines": cart, "member_id": member["id"]}).json()
        assert ([x["text"] for x in shown["lines"]], shown["points"]) == (texts, points)
        bought = program.purchase(member["id"], lines=cart)
        assert ([a["text"] for a in bought["awards"]], bought["points"]) == (texts, points)
    assert program.balance(member["id"])["pending"] == 320


def test_a_category_sent_in_capitals_earns_its_bonus_in_the_preview_the_purchase_and_gives_it_back(
    program: ApiProgram,
) -> None:
    """The rules say "viennoiserie", the till sends "Viennoiserie": the pastry bonus is paid, previewed alike,
    and a return of the croissants takes back their bonus."""
    apply(program, RULES)
    member = program.enrol(first_name="Léa")
    cart = [line("CROISSANT", 130, 2, category="Viennoiserie"), line("BAGUETTE", 120, 1, category="Pain")]
    shown = program.call("POST", "/v1/preview", json={"lines": cart, "member_id": member["id"]}).json()
    bought = program.purchase(member["id"], lines=cart, occurred_at="2026-03-02T09:00:00Z")
    assert shown["points"] == bought["points"] == 3 + 4  # 3 points for €3.80, +2 for each croissant
    assert [x["text"] for x in bought["awards"]] == ["1 point per euro: +3", "Pastry bonus +2/item: +4"]
    returned = program.call(
        "POST",
        "/v1/events/returns",
        json=return_body(bought["external_id"], lines=[{"sku": "CROISSANT", "quantity": 2}]),
    )
    assert returned.status_code == 201, returned.text
    assert returned.json()["points"] == -(2 + 4)  # their 2 points of the €3.80 and their bonus


def test_a_croissant_given_free_earns_no_pastry_bonus_in_the_preview_or_the_purchase(program: ApiProgram) -> None:
    apply(program, RULES)
    member = program.enrol(first_name="Léa")
    cart = [line("CROISSANT", 130, 2, category="viennoiserie"),
            {**line("CROISSANT", 130, 1, category="viennoiserie"), "discount": 130}]  # its coupon: free  # fmt: skip
    shown = program.call("POST", "/v1/preview", json={"lines": cart, "member_id": member["id"]}).json()
    bought = program.purchase(member["id"], lines=cart, occurred_at="2026-03-02T09:00:00Z")
    assert shown["points"] == bought["points"] == 2 + 4  # 2 points for €2.60, +2 for each croissant paid
    assert [x["text"] for x in bought["awards"]] == ["1 point per euro: +2", "Pastry bonus +2/item: +4"]


def test_actions_over_http(program: ApiProgram) -> None:
    apply(program, RULES)
    member = program.enrol(first_name="Léa")
    path = f"/v1/members/{member['id']}/actions"
    first = program.call("POST", path, json={"action": "review", "reference": "R-1"})
    assert first.status_code == 201, first.text
    assert first.json()["points"] == 15 and first.json()["type"] == "action"
    assert program.call("POST", path, json={"action": "review", "reference": "R-1"}).status_code == 200
    assert_problem(
        program.call("POST", path, json={"action": "review", "reference": "R-2"}),
        422,
        "action_limit_reached",
        field="action",
    )
    assert_problem(
        program.call("POST", path, json={"action": "tweet", "reference": "T"}), 422, "unknown_action", field="action"
    )
    assert program.balance(member["id"])["available"] == 15


def test_how_to_earn_in_french_and_english(program: ApiProgram) -> None:
    apply(program, RULES)
    english = program.call("GET", "/v1/how-to-earn").json()
    french = program.call("GET", "/v1/how-to-earn", params={"language": "fr"}).json()
    assert "Product review: 15 points (once a week)" in english["lines"]
    assert "1 point per euro — 1 point per €1.00" in english["lines"]
    assert "Avis produit : 15 points (une fois par semaine)" in french["lines"]  # a space before the colon, in French
    assert "Bonus viennoiserie — 2 points par article sur viennoiserie" in french["lines"]
    weekend = next(x for x in french["lines"] if x.startswith("Week-end double"))
    assert weekend.startswith("Week-end double — gains multipliés par 2")  # whatever the points are called
    # the pastry bonus per item is not doubled (a multiplier multiplies points per amount): the line says so
    assert weekend.startswith("Week-end double — gains multipliés par 2 (sauf : Bonus viennoiserie), du 7 mars")
    assert any(
        x.startswith("Double points weekend — earnings multiplied by 2 (except: Pastry bonus), from")
        for x in english["lines"]
    )
    # dates as people write them; a campaign ending at midnight runs to the day before, included
    assert weekend.endswith(", du 7 mars 2026 au 8 mars 2026"), weekend
    assert any(x.endswith(", from 7 March 2026 to 8 March 2026") for x in english["lines"]), english["lines"]


def test_how_to_earn_dates_a_campaign_given_in_utc_on_the_programs_calendar(program: ApiProgram) -> None:
    """A weekend written in UTC (Friday 23:00Z to Sunday 23:00Z is Saturday to Monday midnight in Paris) is told
    as the days members live it, not as the UTC wall clock: "from 7 March to 8 March", not "6 March at 23:00"."""
    utc_weekend = {**RULES["campaigns"][0], "starts": "2026-03-06T23:00:00Z", "ends": "2026-03-08T23:00:00Z"}
    assert apply(program, {**RULES, "campaigns": [utc_weekend]}).status_code == 201
    english = program.call("GET", "/v1/how-to-earn").json()["lines"]
    french = program.call("GET", "/v1/how-to-earn", params={"language": "fr"}).json()["lines"]
    assert any(x.endswith(", from 7 March 2026 to 8 March 2026") for x in english), english
    assert any(x.endswith(", du 7 mars 2026 au 8 mars 2026") for x in french), french


def test_a_weekend_ending_sunday_at_23_59_59_pays_its_last_second_and_is_told_as_the_whole_sunday(
    program: ApiProgram, clock: FrozenClock
) -> None:
    """Saturday 00:00 to Sunday 23:59:59 in Paris: how-to-earn says "to 1 March" ("au 1er mars"), not "at 23:59",
    which leaves the reader unsure of the last minute; and a sale at 23:59:59.5 on Sunday gets the double points, in the
    preview as in the purchase."""
    clock.set(datetime(2026, 2, 27, 9, 0, tzinfo=UTC))
    weekend = {**RULES["campaigns"][0], "starts": "2026-02-28T00:00:00", "ends": "2026-03-01T23:59:59"}
    assert apply(program, {**RULES, "campaigns": [weekend]}).status_code == 201
    english = program.call("GET", "/v1/how-to-earn").json()["lines"]
    french = program.call("GET", "/v1/how-to-earn", params={"language": "fr"}).json()["lines"]
    assert any(x.endswith(", from 28 February 2026 to 1 March 2026") for x in english), english
    assert any(x.endswith(", du 28 février 2026 au 1er mars 2026") for x in french), french
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    member = program.enrol(first_name="Léa")
    last_second = "2026-03-01T22:59:59.500Z"  # Sunday 23:59:59.5 in Paris
    shown = program.call("POST", "/v1/preview", json={"lines": [line("BAG", 2000)], "at": last_second}).json()
    bought = program.purchase(member["id"], lines=[line("BAG", 2000)], occurred_at=last_second)
    assert shown["points"] == bought["points"] == 40
    assert [a["text"] for a in bought["awards"]] == ["1 point per euro: +20", "Double points weekend ×2: +20"]


def test_a_campaign_given_by_its_days_is_told_and_exported_with_its_last_day_included(program: ApiProgram) -> None:
    weekend = {**RULES["campaigns"][0], "starts": "2026-03-07", "ends": "2026-03-08"}
    applied = apply(program, {**RULES, "campaigns": [weekend]})
    assert applied.status_code == 201, applied.text
    english = program.call("GET", "/v1/how-to-earn").json()["lines"]
    assert any(x.endswith(", from 7 March 2026 to 8 March 2026") for x in english), english
    exported = program.call("GET", "/v1/program/rules").json()["document"]["campaigns"][0]
    assert (exported["starts"], exported["ends"]) == ("2026-03-07T00:00:00", "2026-03-08T23:59:59")
    assert apply(program, {**RULES, "campaigns": [weekend]}).status_code == 200  # the same file: unchanged


def test_how_to_earn_tells_every_condition_a_member_must_meet_by_its_name(program: ApiProgram) -> None:
    """A bonus for Gold members of a segment, on small baskets, is not told as a bonus for everyone."""
    gold = {"code": "gold", "name": {"fr": "Or", "en": "Gold"}, "threshold": 500_00}
    assert program.call("PUT", "/v1/tiers", json={"metric": "spend", "tiers": [gold]}).status_code == 200
    segment = {"code": "regulars", "name": {"fr": "Habitués", "en": "Regulars"}, "conditions": [
        {"field": "order_count", "op": ">=", "value": 5}]}  # fmt: skip
    assert program.call("POST", "/v1/segments", json=segment).status_code == 201
    vip = {"tiers": ["gold"], "segments": ["regulars"], "max_spend": 2000, "min_quantity": 2}
    rules = [
        {**RULES["rules"][0], "id": "vip", "name": {"en": "VIP", "fr": "VIP"}, "conditions": vip},
        {"id": "cash", "name": {"en": "Cashback", "fr": "Remise"}, "event": "purchase",
         "effect": {"type": "cashback_percent", "percent": "2.5"}},
    ]  # fmt: skip
    assert apply(program, {"rules": rules}).status_code == 201
    english = program.call("GET", "/v1/how-to-earn").json()["lines"]
    french = program.call("GET", "/v1/how-to-earn", params={"language": "fr"}).json()["lines"]
    assert english == [
        "VIP — 1 point per €1.00 up to €20.00 spent, from 2 items, at tier Gold, for members in: Regulars",
        "Cashback — 2.5% back",
    ]
    assert french == [
        "VIP — 1 point par tranche de 1,00\u00a0€ jusqu'à 20,00\u00a0€ d'achat, dès 2 articles, au niveau Or, "
        "pour les membres : Habitués",
        "Remise — 2,5\u00a0% remboursés",
    ]


def test_how_to_earn_tells_who_a_rule_is_for_by_their_language_channel_birthday_or_repeat_purchase(
    program: ApiProgram,
) -> None:
    """A bonus for members who joined in the app, for French speakers, for those born in March, or on repeat
    purchases pays no one else: told as "50 points per purchase" alone, every member would expect it."""
    fixed = {"type": "fixed", "points": 50}
    rules = [
        {"id": "app", "name": {"en": "App club", "fr": "Club appli"}, "event": "purchase", "effect": fixed,
         "conditions": {"attributes": {"enrolment_channel": "app"}}},
        {"id": "march", "name": {"en": "March babies", "fr": "Natifs de mars"}, "event": "purchase", "effect": fixed,
         "conditions": {"attributes": {"birthday_month": "3", "language": "fr"}}},
        {"id": "again", "name": {"en": "Welcome back", "fr": "Bon retour"}, "event": "purchase", "effect": fixed,
         "conditions": {"first_purchase": False}},
        {"id": "reviewer", "name": {"en": "Reviewer", "fr": "Critique"}, "event": "action", "effect": fixed,
         "conditions": {"actions": ["review"]}},
    ]  # fmt: skip
    assert apply(program, {"actions": RULES["actions"], "rules": rules}).status_code == 201
    english = program.call("GET", "/v1/how-to-earn").json()["lines"][1:]
    french = program.call("GET", "/v1/how-to-earn", params={"language": "fr"}).json()["lines"][1:]
    assert english == [
        "App club — 50 points per purchase for members who joined in the app",
        "March babies — 50 points per purchase for members who speak French, for members born in March",
        "Welcome back — 50 points per purchase from your second purchase",
        "Reviewer — 50 points for: Product review",  # the action's name, not its id
    ]
    assert french == [
        "Club appli — 50 points par achat pour les membres inscrits dans l'appli",
        "Natifs de mars — 50 points par achat pour les membres francophones, pour les membres nés en mars",
        "Bon retour — 50 points par achat à partir de votre deuxième achat",
        "Critique — 50 points pour : Avis produit",
    ]


def test_how_to_earn_leaves_out_a_rule_whose_dates_are_over(program: ApiProgram, clock: FrozenClock) -> None:
    clock.set(datetime(2026, 3, 9, 23, 30, tzinfo=UTC))  # 10 March in Paris: the sale's last day was yesterday
    sale = {**RULES["rules"][2], "id": "sale", "name": {"en": "Sale", "fr": "Soldes"},
            "conditions": {"dates": {"start": "2026-03-01", "end": "2026-03-09"}}}  # fmt: skip
    today = {**sale, "id": "today", "name": {"en": "Today", "fr": "Aujourd'hui"},
             "conditions": {"dates": {"start": "2026-03-10", "end": "2026-03-10"}}}  # fmt: skip
    assert apply(program, {"rules": [RULES["rules"][0], sale, today]}).status_code == 201
    lines = program.call("GET", "/v1/how-to-earn").json()["lines"]
    assert [line.split(" — ")[0] for line in lines] == ["1 point per euro", "Today"]


def test_how_to_earn_says_what_an_exclusive_rule_is_not_combined_with_and_a_campaigns_cap_per_member(
    program: ApiProgram, clock: FrozenClock
) -> None:
    """Black Friday pays 3 points per euro instead of the base rate, not on top of it: the page does not let a
    member add them up to 4 (the preview gives 3 a euro); and a double weekend capped at 50 points per member
    says so."""
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    base = RULES["rules"][0]
    friday = {**base, "id": "black-friday", "name": {"en": "Black Friday", "fr": "Black Friday"}, "priority": 10,
              "exclusive": True, "effect": {"type": "points_per_amount", "points": 3, "per_amount": 100},
              "conditions": {"dates": {"start": "2026-03-06", "end": "2026-03-06"}}}  # fmt: skip
    weekend = {**RULES["campaigns"][0], "member_cap": 50}
    rules = [base, friday, RULES["rules"][1]]
    assert apply(program, {"campaigns": [weekend], "rules": rules}).status_code == 201
    english = program.call("GET", "/v1/how-to-earn").json()["lines"]
    french = program.call("GET", "/v1/how-to-earn", params={"language": "fr"}).json()["lines"]
    assert english[1] == (
        "Black Friday — 3 points per €1.00 from 6 March 2026 to 6 March 2026 "
        "(not combined with: 1 point per euro, Double points weekend)"
    )
    assert french[1].endswith("(non cumulable avec : 1 point par euro, Week-end double)"), french
    assert english[0] == "1 point per euro — 1 point per €1.00"  # what runs before nothing exclusive: as it was
    assert english[2].endswith(", from 7 March 2026 to 8 March 2026, up to 50 points per member"), english
    assert french[2].endswith(", du 7 mars 2026 au 8 mars 2026, jusqu'à 50 points par membre"), french
    shown = program.call("POST", "/v1/preview", json={"lines": [line("BAG", 1000)], "at": "2026-03-06T12:00:00"})
    assert shown.json()["points"] == 30  # 3 a euro, as told: not 4


def test_how_to_earn_leaves_out_a_campaign_whose_budget_is_spent_until_a_return_gives_some_back(
    program: ApiProgram, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    launch = {"id": "launch", "name": {"en": "Launch"}, "starts": "2026-03-01T00:00:00",
              "ends": "2026-04-01T00:00:00", "budget": 10}  # fmt: skip
    bonus = {"id": "launch-gift", "name": {"en": "Launch gift"}, "event": "purchase", "campaign": "launch",
             "effect": {"type": "fixed", "points": 10}}  # fmt: skip
    assert apply(program, {"campaigns": [launch], "rules": [RULES["rules"][0], bonus]}).status_code == 201

    def told() -> list[str]:
        return [x.split(" — ")[0] for x in program.call("GET", "/v1/how-to-earn").json()["lines"]]

    assert told() == ["1 point per euro", "Launch gift"]
    member = program.enrol(first_name="Ann")
    body = purchase_body(member["id"], occurred_at=clock.now().isoformat())
    assert program.call("POST", "/v1/events/purchases", json=body).json()["points"] == 10 + 10
    assert told() == ["1 point per euro"]  # nobody can get it any more: not told as if they could
    back = {"return_id": "R-1", "order_id": body["order_id"], "occurred_at": clock.now().isoformat(), "amount": 1000}
    assert program.call("POST", "/v1/events/returns", json=back).status_code == 201
    assert told() == ["1 point per euro", "Launch gift"]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    carts=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["viennoiserie", "coffee", None]), st.integers(1, 4), st.integers(0, 5000)),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=3,
    ),
    weekend=st.booleans(),
)
def test_preview_and_the_real_award_agree_for_random_carts(
    new_program: Any, clock: FrozenClock, carts: list[Any], weekend: bool
) -> None:
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    program = new_program()
    apply(program, RULES)
    member = program.enrol(first_name="Ann")
    clock.set(datetime(2026, 3, 7, 10, 0, tzinfo=UTC) if weekend else datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    for cart in carts:
        lines = [
            line(f"SKU-{i}", price, qty, **({"category": c} if c else {})) for i, (c, qty, price) in enumerate(cart)
        ]
        shown = program.call("POST", "/v1/preview", json={"lines": lines, "member_id": member["id"]}).json()
        body = purchase_body(member["id"], lines=lines, occurred_at=clock.now().isoformat())
        bought = program.call("POST", "/v1/events/purchases", json=body).json()
        assert bought["points"] == shown["points"]
        assert [a["text"] for a in bought["awards"]] == [x["text"] for x in shown["lines"]]


def test_a_national_chains_campaign_budget_of_billions_of_points_is_accepted(program: ApiProgram) -> None:
    campaign = {**RULES["campaigns"][0], "budget": 5_000_000_000}  # 50 million members, 100 points each
    assert apply(program, {**RULES, "campaigns": [campaign]}).status_code == 201
    assert program.call("GET", "/v1/program/rules").json()["document"]["campaigns"][0]["budget"] == 5_000_000_000
    too_much = {**RULES, "campaigns": [{**campaign, "budget": 10**12 + 1}]}
    assert_problem(apply(program, too_much), 422, "out_of_range", field="campaigns[0].budget")
