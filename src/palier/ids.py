"""Prefixed, time-sortable identifiers: ``mem_01JD3Z6Q4W8K2M9T7V5X3C1B0A``.

26 characters of Crockford base32: 48 bits of milliseconds then 80 random bits (the ULID layout),
so ids sort by creation time, which is what cursor pagination relies on.
"""

from __future__ import annotations

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
}

_lock = threading.Lock()
_last = (0, 0)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))


def new_id(kind: str) -> str:
    """A new id for ``kind`` (a key of PREFIXES); monotonic within this process."""
    global _last
    prefix = PREFIXES[kind]
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, last_rand = _last
        rand = last_rand + 1 if ms <= last_ms else secrets.randbits(80)
        ms = max(ms, last_ms)
        _last = (ms, rand)
    return f"{prefix}_{_encode(ms, 10)}{_encode(rand & ((1 << 80) - 1), 16)}"
