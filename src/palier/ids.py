"""Prefixed, time-sortable identifiers: ``mem_01JD3Z6Q4W8K2M9T7V5X3C1B0A``.

26 characters of Crockford base32: 48 bits of milliseconds then 80 random bits (the ULID layout),
so ids sort by creation time, which is what cursor pagination relies on.
"""

from __future__ import annotations

import base64
import functools
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
    "payment": "pay",
}

_lock = threading.Lock()
_last = (0, 0)


_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))


def _encode_random(rand: int) -> str:
    """80 bits as 16 Crockford characters: base32 of 10 bytes is exactly 16 characters, no padding."""
    return base64.b32encode(rand.to_bytes(10, "big")).translate(_TO_CROCKFORD).decode()


@functools.lru_cache(maxsize=4)
def _encode_time(ms: int) -> str:
    return _encode(ms, 10)


def new_id(kind: str) -> str:
    """A new id for ``kind`` (a key of PREFIXES); monotonic within this process."""
    global _last
    prefix = PREFIXES[kind]
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, last_rand = _last
        rand = last_rand + 1 if ms <= last_ms else secrets.randbits(79)  # headroom: +1 never overflows 80 bits
        ms = max(ms, last_ms)
        _last = (ms, rand)
    return f"{prefix}_{_encode_time(ms)}{_encode_random(rand)}"
