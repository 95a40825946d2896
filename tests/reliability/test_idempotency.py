"""Idempotency under concurrent replay, over real HTTP, on SQLite and PostgreSQL.

The promise (README, "Retries and idempotency"): 10 concurrent replays of each kind of write give exactly
one effect; a refusal replays as the same refusal; the same key with a different body is a 409.

The cases come from the OpenAPI document: every write operation that declares the ``Idempotency-Key``
header is exercised, and a write operation that declares none must be listed in ``EXEMPT`` with a reason.
Each write is sent to two twin programs built the same way: once to the first (the reference), and 10
times at once with one key to the second (threads behind a barrier, one HTTP client each). The 10 answers
must be identical (status and body), exactly one of them the original and 9 marked ``Idempotent-Replayed``,
and the second program must have changed exactly as the first did: the same rows of every kind, the same
balances. Each program's ledger must then verify clean.

Default: one pass over every write per engine. ``PALIER_SLOW=1``: 3 passes. Each thread waits a seeded
random moment (under 3 ms) after the barrier; a failure names its seed, and ``PALIER_IDEMPOTENCY_SEED=<seed>``
replays the same waits.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from palier.api.app import create_app
from palier.clock import FrozenClock
from palier.config import Settings
from palier.db import Database, make_database
from palier.db.metadata import metadata
from palier.ledger.tables import accounts
from palier.programs.tables import programs
from tests.api.conftest import CARD_KEY, OPERATOR_TOKEN, assert_ledger_sound, create_program
from tests.api.helpers import ApiProgram, assert_problem, reward_body, unique
from tests.api.routes import Route, World, make_world, request_for, route_id
from tests.conftest import ENGINES
from tests.web.conftest import SECRET_KEY, START, _serve

SLOW = os.environ.get("PALIER_SLOW", "").strip() not in ("", "0")
PASSES = 3 if SLOW else 1
REPLAYS = 10
WRITES = ("POST", "PATCH", "PUT", "DELETE")
KEY_HEADER = "Idempotency-Key"

# Write operations that take no Idempotency-Key, and why a retry of them is safe without one.
EXEMPT: dict[Route, str] = {
    ("POST", "/v1/members/lookup"): "a read sent as POST (card and phone numbers stay out of URLs): writes nothing",
    ("POST", "/v1/preview"): "a read sent as POST (a whole cart): writes nothing",
    ("POST", "/v1/coupons/{code}/validate"): "a read sent as POST (a whole cart): writes nothing",
    ("POST", "/v1/webhook/test"): "sends a test event to the webhook and writes nothing: a retry sends another",
    ("POST", "/v1/members/{member_id}/portal-link"): (
        "a single-use sign-in link: keeping it to replay would keep a live credential; a retry gets a fresh"
        " link, the unused one expires in 15 minutes, and no points, coupon or profile change is made"
    ),
}

# What two calls of an exempt operation may write (nothing, unless named here).
EXEMPT_WRITES: dict[Route, dict[str, int]] = {("POST", "/v1/members/{member_id}/portal-link"): {"portal_sign_ins": 2}}

# Replays never show a secret again: these fields of the original answer are redacted in the replays.
SECRETS: dict[Route, tuple[str, ...]] = {
    ("POST", "/v1/keys"): ("secret",),
    ("POST", "/v1/programs"): ("admin_key", "secret"),
}


def seed_of() -> int:
    """``PALIER_IDEMPOTENCY_SEED`` if set, else a fresh seed (named by every failure)."""
    fixed = os.environ.get("PALIER_IDEMPOTENCY_SEED")
    return int(fixed) if fixed else random.SystemRandom().randrange(1, 10**6)


# --- the server --------------------------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    db: Database
    engine: str
    operations: dict[Route, dict[str, Any]]  # the OpenAPI operation of every (method, path)


@pytest.fixture(scope="module", params=ENGINES)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The app over real HTTP (uvicorn, a free port), with the production pool size, on each engine."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    db = make_database(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PALIER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        settings = Settings(database_url=url, card_hash_key=CARD_KEY, secret_key=SECRET_KEY)
        app = create_app(settings, db=db, clock=FrozenClock(START))
        server, thread, port = _serve(app)
        base = f"http://127.0.0.1:{port}"
        try:
            document = httpx.get(f"{base}/openapi.json", timeout=30).json()
            operations = {
                (method.upper(), path): operation
                for path, item in document["paths"].items()
                for method, operation in item.items()
            }
            yield Served(url=base, db=db, engine=request.param, operations=operations)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            db.dispose()


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        yield http


@pytest.fixture
def new_world(served: Served, client: httpx.Client) -> Iterator[Callable[[], World]]:
    """Worlds (tests/api/routes.py) in programs of their own; every program's ledger verified at the end."""
    made: list[str] = []

    def make() -> World:
        program = create_program(client, return_window_days=0, points_lifetime_months=None)  # type: ignore[arg-type]
        made.append(program.id)
        return make_world(program, served.db)

    yield make
    for program_id in made:
        assert_ledger_sound(served.db, program_id)


def keyed_writes(served: Served) -> list[Route]:
    """Write operations whose OpenAPI document declares the Idempotency-Key header, in path order."""
    return sorted(
        (
            route
            for route, operation in served.operations.items()
            if route[0] in WRITES
            and any(p.get("in") == "header" and p.get("name") == KEY_HEADER for p in operation.get("parameters", []))
        ),
        key=lambda r: (r[1], r[0]),
    )


# --- firing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    replayed: bool


def fire(base: str, method: str, url: str, *, headers: dict[str, str], bodies: list[Any], seed: int) -> list[Answer]:
    """Send one request per body, all at once: a thread and a connected client each, released by a barrier."""
    jitter = random.Random(seed)
    waits = [jitter.random() * 0.003 for _ in bodies]
    barrier = threading.Barrier(len(bodies))
    answers: list[Answer | BaseException | None] = [None] * len(bodies)

    def one(i: int) -> None:
        try:
            with httpx.Client(base_url=base, timeout=60) as http:
                http.get("/health")  # connected before the barrier: the requests leave together
                barrier.wait(timeout=30)
                time.sleep(waits[i])
                response = http.request(method, url, headers=headers, json=bodies[i])
            answers[i] = Answer(
                response.status_code, response.json(), response.headers.get("Idempotent-Replayed") == "true"
            )
        except BaseException as exc:  # reported by the caller, with the seed
            answers[i] = exc

    threads = [threading.Thread(target=one, args=(i,), name=f"replay-{i}") for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    failed = [a for a in answers if not isinstance(a, Answer)]
    assert not failed, f"seed {seed}: {method} {url}: requests failed: {failed}"
    return [a for a in answers if isinstance(a, Answer)]


def replay(base: str, program: ApiProgram, route: Route, request: tuple[str, str, dict[str, Any]], *, key: str,
           seed: int) -> list[Answer]:  # fmt: skip
    """The same request ``REPLAYS`` times at once under one Idempotency-Key."""
    method, url, kwargs = request
    headers = program.headers(OPERATOR_TOKEN if route == ("POST", "/v1/programs") else None, idempotency_key=key)
    return fire(base, method, url, headers=headers, bodies=[kwargs.get("json")] * REPLAYS, seed=seed)


# --- what changed ------------------------------------------------------------------------------------------

_SCOPED = [t for t in metadata.sorted_tables if "program_id" in t.c]


def footprint(db: Database, program_id: str) -> dict[str, Any]:
    """Rows of every kind the program owns, its settings' last change, and its balances by account kind.

    Two twin programs that received the same writes once each have equal footprints (ids aside).
    """
    counts = [
        select(func.count()).select_from(t).where(t.c.program_id == program_id).scalar_subquery().label(t.name)
        for t in _SCOPED
    ]
    with db.read() as conn:
        found: dict[str, Any] = dict(
            conn.execute(select(programs.c.updated_at, *counts).where(programs.c.id == program_id)).mappings().one()
        )
        balances = conn.execute(
            select(accounts.c.kind, accounts.c.asset, func.sum(accounts.c.balance))
            .where(accounts.c.program_id == program_id)
            .group_by(accounts.c.kind, accounts.c.asset)
        ).all()
    found.update({f"balance {kind} {asset}": int(total) for kind, asset, total in balances})
    return found


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What moved between two footprints: counts and balances as differences, the rest as (old, new)."""
    moved: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, 0), after.get(name, 0)
        if old != new:
            moved[name] = new - old if isinstance(new, int) and isinstance(old, int) else "changed"
    return moved


def redacted(route: Route, body: Any) -> Any:
    """The answer with the secret a replay never shows put aside (see ``SECRETS``)."""
    path = SECRETS.get(route)
    if not path or not isinstance(body, dict):
        return body
    copy = dict(body)
    if len(path) == 2:
        copy[path[0]] = {k: v for k, v in copy[path[0]].items() if k != path[1]}
    else:
        copy.pop(path[0])
    return copy


def check_answers(route: Route, answers: list[Answer], reference: httpx.Response) -> list[str]:
    """10 identical answers, one original and 9 replays, of the same status as the reference request."""
    problems = []
    statuses = {a.status for a in answers}
    if statuses != {reference.status_code}:
        problems.append(f"statuses {sorted(a.status for a in answers)}, the single request got {reference.status_code}")
    bodies = {json.dumps(redacted(route, a.body), sort_keys=True) for a in answers}  # JSON objects: unordered
    if len(bodies) != 1:
        problems.append(f"{len(bodies)} different bodies: {sorted(bodies)}")
    originals = [a for a in answers if not a.replayed]
    if len(originals) != 1:
        problems.append(f"{len(originals)} answers not marked Idempotent-Replayed (one must be the original)")
    return problems


# --- the tests ---------------------------------------------------------------------------------------------


def test_every_write_is_keyed_or_exempt_with_a_reason(served: Served) -> None:
    """A new write route must honour Idempotency-Key (and say so in the document) or be exempt, with why."""
    writes = {r for r in served.operations if r[0] in WRITES}
    keyed = set(keyed_writes(served))
    assert keyed, "no write operation declares the Idempotency-Key header"
    assert writes - keyed - set(EXEMPT) == set(), "write operations neither keyed nor exempt"
    assert keyed & set(EXEMPT) == set(), "exempt operations that declare the header all the same"
    assert set(EXEMPT) <= writes, "exempt operations the API no longer has"


def test_exempt_writes_are_safe_to_retry_without_a_key(served: Served, new_world: Callable[[], World]) -> None:
    """What ``EXEMPT`` says holds: sent twice (with a key they ignore), they write nothing a retry doubles."""
    world = new_world()
    wrote: dict[Route, dict[str, Any]] = {}
    for route in EXEMPT:
        method, url, kwargs = request_for(route, world)
        before = footprint(served.db, world.program.id)
        for _ in range(2):
            answer = world.program.call(method, url, idempotency_key=f"exempt {route_id(route)}", **kwargs)
            assert 200 <= answer.status_code < 300, f"{route_id(route)}: {answer.text}"
        wrote[route] = changes(before, footprint(served.db, world.program.id))
    assert wrote == {route: EXEMPT_WRITES.get(route, {}) for route in EXEMPT}


def test_ten_concurrent_replays_of_every_write_have_one_effect(
    served: Served, client: httpx.Client, new_world: Callable[[], World]
) -> None:
    seed = seed_of()
    rng = random.Random(seed)
    problems: list[str] = []
    for _ in range(PASSES):
        reference, twin = new_world(), new_world()
        for route in keyed_writes(served):
            found = once_and_ten_times(served, client, route, reference, twin, seed=rng.randrange(10**6))
            problems += [f"{route_id(route)}: {problem}" for problem in found]
    assert problems == [], f"seed {seed}:\n" + "\n".join(problems)


def once_and_ten_times(
    served: Served, client: httpx.Client, route: Route, reference: World, twin: World, *, seed: int
) -> list[str]:
    """``route`` once on the reference world and 10 times at once (one key) on its twin: what differs."""
    before = (footprint(served.db, reference.program.id), footprint(served.db, twin.program.id))
    method, url, kwargs = request_for(route, reference)
    operator = OPERATOR_TOKEN if route == ("POST", "/v1/programs") else None
    first = client.request(method, url, headers=reference.program.headers(operator, idempotency_key=unique("key")),
                           **kwargs)  # fmt: skip
    if not 200 <= first.status_code < 300:
        return [f"the single request was refused: {first.text}"]
    request = request_for(route, twin)
    answers = replay(served.url, twin.program, route, request, key=unique("key"), seed=seed)
    problems = check_answers(route, answers, first)
    after = (footprint(served.db, reference.program.id), footprint(served.db, twin.program.id))
    once, ten = changes(before[0], after[0]), changes(before[1], after[1])
    if once != ten:
        problems.append(f"one request changed {once}; 10 replays changed {ten}")
    if operator:  # a new program is outside both worlds: count it by its name
        with served.db.read() as conn:
            made = conn.execute(
                select(func.count()).select_from(programs).where(programs.c.name == request[2]["json"]["name"])
            ).scalar_one()
        if made != 1:
            problems.append(f"{made} programs made")
    return problems


# Facts sent under their own id, which a retry without an Idempotency-Key repeats: (route, the id's field).
FACTS: list[tuple[Route, str]] = [
    (("POST", "/v1/events/purchases"), "order_id"),
    (("POST", "/v1/events/returns"), "return_id"),
    (("POST", "/v1/members/{member_id}/actions"), "reference"),
    (("POST", "/v1/members/{member_id}/payments"), "order_id"),
    (("POST", "/v1/memberships/payments"), "payment_id"),
]


@pytest.mark.parametrize("fact", FACTS, ids=[route_id(f[0]) for f in FACTS])
def test_a_fact_sent_ten_times_at_once_under_its_own_id_has_one_effect(
    served: Served, client: httpx.Client, new_world: Callable[[], World], fact: tuple[Route, str]
) -> None:
    """No Idempotency-Key: the fact's own id (order, return, payment, reference) makes the 9 others replays of
    the first, each answered with its result, never a refusal caused by the first (the items it returned,
    the period it paid)."""
    route, field = fact
    seed = seed_of()
    reference, twin = new_world(), new_world()
    before = footprint(served.db, reference.program.id), footprint(served.db, twin.program.id)
    method, url, kwargs = request_for(route, reference)
    once = client.request(method, url, headers=reference.program.headers(), **kwargs)
    assert 200 <= once.status_code < 300, once.text
    method, url, kwargs = request_for(route, twin)
    assert field in kwargs["json"]
    answers = fire(served.url, method, url, headers=twin.program.headers(), bodies=[kwargs["json"]] * REPLAYS,
                   seed=seed)  # fmt: skip
    refused = [a for a in answers if not 200 <= a.status < 300]
    assert refused == [], f"seed {seed}: the same {field} sent again at once was refused: {refused}"
    after = footprint(served.db, reference.program.id), footprint(served.db, twin.program.id)
    assert changes(before[1], after[1]) == changes(before[0], after[0]), f"seed {seed}"


def assert_one_answer(answers: list[Answer], status: int, code: str, seed: int) -> dict[str, Any]:
    """All answers the same refusal (status, problem code, body), one of them the original."""
    assert {a.status for a in answers} == {status}, f"seed {seed}: {answers}"
    assert {json.dumps(a.body, sort_keys=True) for a in answers} == {json.dumps(answers[0].body, sort_keys=True)}, (
        f"seed {seed}: different refusals {answers}"
    )
    assert answers[0].body["code"] == code, f"seed {seed}: {answers[0].body}"
    assert sum(not a.replayed for a in answers) == 1, f"seed {seed}: {answers}"
    body: dict[str, Any] = answers[0].body
    return body


def pricey_reward(world: World) -> str:
    """A reward of 1,000,000 points: more than the world's member has."""
    made = world.program.call("POST", "/v1/rewards", json=reward_body(cost_points=10**6))
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def give_points(world: World) -> None:
    world.program.adjust(world.member_id, 10**7, reason="Enough points now")


def give_store_credit(world: World) -> None:
    """€10,000 of store credit in the member's wallet: a store-credit reward redeemed with points given."""
    made = world.program.call("POST", "/v1/rewards", json=reward_body(kind="store_credit", cost_points=1,
                                                                         amount=10**6))  # fmt: skip
    assert made.status_code == 201, made.text
    world.program.adjust(world.member_id, 1, reason="The reward's point")
    redeemed = world.program.call("POST", f"/v1/members/{world.member_id}/redemptions",
                                  json={"reward_id": made.json()["id"]})  # fmt: skip
    assert redeemed.status_code == 201, redeemed.text


# Refusals that depend on the member's state: (what, route, request for the world, status, problem code,
# what makes the request possible afterwards).
REFUSALS: list[tuple[str, Route, Callable[[World], dict[str, Any]], int, str, Callable[[World], None]]] = [
    (
        "redeem without enough points",
        ("POST", "/v1/members/{member_id}/redemptions"),
        lambda w: {"reward_id": pricey_reward(w)},
        422,
        "insufficient_points",
        give_points,
    ),
    (
        "pay with more points than the member has",
        ("POST", "/v1/members/{member_id}/payments"),
        lambda w: {"kind": "points", "order_id": unique("pay"), "order_total": 10**7, "points": 10**6},
        422,
        "insufficient_points",
        give_points,
    ),
    (
        "pay with more store credit than the wallet holds",
        ("POST", "/v1/members/{member_id}/payments"),
        lambda w: {"kind": "credit", "order_id": unique("pay"), "order_total": 10**7, "amount": 10**5},
        422,
        "insufficient_credit",
        give_store_credit,
    ),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refusal_replays_as_the_same_refusal_and_writes_nothing(
    served: Served, new_world: Callable[[], World], refusal: tuple[Any, ...]
) -> None:
    """10 at once: one refusal, kept; then, once the member can afford it, the key still answers the refusal."""
    _what, route, body, status, code, make_possible = refusal
    seed = seed_of()
    world = new_world()
    method, url, _kwargs = request_for(route, world)
    key = unique("key")
    headers = world.program.headers(idempotency_key=key)
    request_body = body(world)
    before = footprint(served.db, world.program.id)

    answers = fire(served.url, method, url, headers=headers, bodies=[request_body] * REPLAYS, seed=seed)
    refused = assert_one_answer(answers, status, code, seed)
    assert changes(before, footprint(served.db, world.program.id)) == {"idempotency_keys": 1}, f"seed {seed}"

    make_possible(world)
    rich = footprint(served.db, world.program.id)
    again = world.program.call(method, url, idempotency_key=key, json=request_body)
    assert (again.status_code, again.json()) == (status, refused), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert footprint(served.db, world.program.id) == rich, "a replayed refusal wrote something"
    fresh = world.program.call(method, url, idempotency_key=unique("key"), json=request_body)
    assert fresh.status_code == 201, f"the same request under a new key should now pass: {fresh.text}"


def test_the_same_key_with_another_body_is_409_and_writes_nothing(
    served: Served, new_world: Callable[[], World]
) -> None:
    seed = seed_of()
    world = new_world()
    program, key = world.program, unique("key")
    first = program.call("POST", "/v1/members", idempotency_key=key, json={"first_name": "Zoé"})
    assert first.status_code == 201, first.text
    before = footprint(served.db, program.id)

    others = [{"first_name": f"Zoé {i}"} for i in range(REPLAYS)]
    answers = fire(served.url, "POST", "/v1/members", headers=program.headers(idempotency_key=key), bodies=others,
                   seed=seed)  # fmt: skip
    for answer in answers:
        assert answer.status == 409 and answer.body["code"] == "idempotency_key_reused", f"seed {seed}: {answer}"
        assert answer.body["field"] == KEY_HEADER
    elsewhere = program.call("POST", f"/v1/members/{world.member_id}/adjustments", idempotency_key=key,
                             json={"points": 5, "reason": "Same key, other route"})  # fmt: skip
    assert_problem(elsewhere, 409, "idempotency_key_reused", field=KEY_HEADER)
    assert footprint(served.db, program.id) == before, "a 409 wrote something"

    # A PATCH that names a field (here: to clear it) is another request than one that leaves it out.
    url = f"/v1/members/{world.member_id}"
    patch_key = unique("key")
    named = program.call("PATCH", url, idempotency_key=patch_key, json={"last_name": "Martin"})
    assert named.status_code == 200, named.text
    cleared = program.call("PATCH", url, idempotency_key=patch_key, json={"last_name": "Martin", "email": None})
    assert_problem(cleared, 409, "idempotency_key_reused", field=KEY_HEADER)
    assert program.call("GET", url).json()["email"] == world.member["email"]


def test_one_key_sent_with_ten_bodies_at_once_lets_one_through(served: Served, new_world: Callable[[], World]) -> None:
    """The same key racing with 10 different bodies: one is done, the 9 others are refused with a 409."""
    seed = seed_of()
    world = new_world()
    program = world.program
    before = footprint(served.db, program.id)
    url = f"/v1/members/{world.member_id}/adjustments"
    bodies = [{"points": 100 + i, "reason": f"Goodwill {i}"} for i in range(REPLAYS)]
    answers = fire(served.url, "POST", url, headers=program.headers(idempotency_key=unique("key")), bodies=bodies,
                   seed=seed)  # fmt: skip
    done = [a for a in answers if a.status == 201]
    assert len(done) == 1, f"seed {seed}: {answers}"
    refused = [a for a in answers if a.status != 201]
    assert all(a.status == 409 and a.body["code"] == "idempotency_key_reused" for a in refused), f"seed {seed}"
    moved = changes(before, footprint(served.db, program.id))
    assert moved["balance available PTS"] == done[0].body["points"], f"seed {seed}: {moved}"
    assert moved["events"] == 1 and moved["idempotency_keys"] == 1, f"seed {seed}: {moved}"
