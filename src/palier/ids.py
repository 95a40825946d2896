"""Prefixed, time-sortable identifiers: ``mem_01JD3Z6Q4W8K2M9T7V5X3C1B0A``.

26 characters of Crockford base32: 48 bits of milliseconds then 80 random bits (the ULID layout),
so ids sort by creation time, which is what cursor pagination relies on.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = {
    "program": "prg",
    "key": "key",
    "member": "mem",
    "identity": "idn",
    "event": "evt",
    "transaction": "txn",
    "lot": "lot",
    "merge": "mrg",
    "return": "ret",
    "audit": "aud",
    "hold": "hld",
    "reward": "rwd",
    "coupon": "cpn",
    "sign_in": "sgn",
    "payment": "pay",
    "outbox": "obx",
    "tier_change": "tch",
    "plan": "pln",
    "membership": "vip",
    "segment": "seg",
    "invitation": "inv",
    "staff": "stf",
    "staff_sign_in": "ssi",
}

_lock = threading.Lock()
_last = (0, 0)


# Every pair of Crockford digits, by the 10 bits it stands for: 80 random bits are 8 lookups.
_PAIRS = [high + low for high in CROCKFORD for low in CROCKFORD]


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))


def _encode_random(rand: int) -> str:
    """80 bits as 16 Crockford characters, most significant first (a bulk import makes 3 ids a purchase)."""
    return "".join([_PAIRS[(rand >> shift) & 1023] for shift in (70, 60, 50, 40, 30, 20, 10, 0)])


@functools.lru_cache(maxsize=4)
def _encode_time(ms: int) -> str:
    return _encode(ms, 10)


def _reserve(count: int) -> tuple[int, int]:
    """The millisecond and the first of ``count`` consecutive random parts for the next ids of this process."""
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, last_rand = _last
        first = last_rand + 1 if ms <= last_ms else secrets.randbits(79)  # headroom: adding never overflows 80 bits
        ms = max(ms, last_ms)
        _last = (ms, first + count - 1)
    return ms, first


def new_id(kind: str) -> str:
    """A new id for ``kind`` (a key of PREFIXES); monotonic within this process."""
    prefix = PREFIXES[kind]
    ms, rand = _reserve(1)
    return f"{prefix}_{_encode_time(ms)}{_encode_random(rand)}"


def new_ids(kind: str, count: int) -> list[str]:
    """``count`` new ids for ``kind`` at once, in order (what ``new_id`` would give ``count`` times, cheaper)."""
    if count <= 0:
        return []
    prefix = PREFIXES[kind]
    ms, first = _reserve(count)
    stem = f"{prefix}_{_encode_time(ms)}"
    return [stem + _encode_random(rand) for rand in range(first, first + count)]


_ID = re.compile(r"[a-z]+_[0-9A-HJKMNP-TV-Z]{26}")


def is_id(value: str, prefix: str) -> bool:
    """Whether ``value`` is shaped as an id with ``prefix`` (a cursor sent back, say): nothing else is looked up."""
    return value.startswith(f"{prefix}_") and _ID.fullmatch(value) is not None
