"""Identifiers: prefixed, fixed-length, and sortable by creation time."""

from __future__ import annotations

import base64
import itertools
import time

import pytest

from palier.ids import CROCKFORD, PREFIXES, _encode_random, new_id, new_ids


@pytest.mark.parametrize(("kind", "prefix"), sorted(PREFIXES.items()))
def test_ids_are_prefixed_and_30_characters_of_crockford_base32(kind: str, prefix: str) -> None:
    value = new_id(kind)
    assert len(value) == 30
    assert value.startswith(f"{prefix}_")
    assert set(value[4:]) <= set(CROCKFORD)


def test_ids_strictly_increase_within_a_process() -> None:
    ids = [new_id("transaction") for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_ids_made_many_at_once_keep_the_same_order() -> None:
    ids = [new_id("outbox"), *new_ids("outbox", 5_000), new_id("outbox"), *new_ids("outbox", 3), new_id("outbox")]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(len(value) == 30 and value.startswith("obx_") for value in ids)
    assert new_ids("outbox", 0) == []


def test_ids_of_different_kinds_share_one_order() -> None:
    bodies = [new_id(kind)[4:] for kind in list(PREFIXES) * 500]
    assert all(a < b for a, b in itertools.pairwise(bodies))


def test_an_id_starts_with_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    stamp = new_id("member")[4:14]
    after = time.time_ns() // 1_000_000
    ms = 0
    for char in stamp:
        ms = ms * 32 + CROCKFORD.index(char)
    assert before <= ms <= after


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(KeyError):
        new_id("voucher")


@pytest.mark.parametrize("rand", [0, 1, 2**79, 2**80 - 1, 0x0123456789ABCDEF0123, 987654321987654321])
def test_the_random_part_is_base32_of_its_10_bytes_in_crockford_digits(rand: int) -> None:
    expected = base64.b32encode(rand.to_bytes(10, "big")).translate(
        bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())
    )
    assert _encode_random(rand) == expected.decode()
