"""Logs that never hold a payment card number, nor a member's sign-in link.

A card number can reach a log line without Palier storing it: a URL someone built by hand
(``GET /v1/members/4970…``) lands in the access log, an exception message repeats what was sent. Every handler
Palier sets up — ``palier serve`` (uvicorn's error and access logs, Palier's own loggers) and ``palier worker``
— carries :class:`MaskCardNumbers`, which rewrites such a number to ``****`` and its last
four digits before the line is written. ``palier scan-cards`` checks log files for what got through.
It also hides the ``token`` of a portal sign-in link (``/p/…/enter?token=…``): single use, but a request
that failed before using it left one that still opens the member's account.
"""

from __future__ import annotations

import copy
import logging
import re
import sys
import time
from typing import Any

from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter, DefaultFormatter

from palier.text import mask_card_numbers

_LINK_TOKEN = re.compile(r"([?&]token=)[^&\s\"']+")


def _clean(text: str) -> str:
    """``text`` with its card numbers masked and a sign-in link's token hidden."""
    return _LINK_TOKEN.sub(r"\1…", mask_card_numbers(text))


class MaskCardNumbers(logging.Filter):
    """Masks card numbers (and sign-in tokens) in a record's message, its arguments and its traceback;
    drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {name: _masked(arg) for name, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = _clean(logging.Formatter().formatException(record.exc_info))
        return True


def _masked(arg: Any) -> Any:
    # Formatters format some arguments themselves (uvicorn's access line reads its five as they are):
    # strings are masked in place, anything else only if its text holds a card number.
    if isinstance(arg, str):
        return _clean(arg)
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    text = str(arg)
    clean = _clean(text)
    return arg if clean == text else clean


class UtcFormatter(DefaultFormatter):
    converter = time.gmtime  # type: ignore[assignment]  # a log's times in UTC, as the worker's and the API's


class UtcAccessFormatter(AccessFormatter):
    converter = time.gmtime  # type: ignore[assignment]


STAMP = "%(asctime)s.%(msecs)03dZ "  # 2026-12-06T03:00:00.123Z
STAMP_DATES = "%Y-%m-%dT%H:%M:%S"


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging set-up, with the mask on each handler and Palier's loggers on its error stream.
    Out of a terminal (a file, systemd, docker) each line starts with its UTC time, as ``palier worker``'s do."""
    config = copy.deepcopy(LOGGING_CONFIG)
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        for name, kind in (("default", UtcFormatter), ("access", UtcAccessFormatter)):
            formatter = config["formatters"][name]
            formatter.update({"()": kind, "fmt": STAMP + formatter["fmt"], "datefmt": STAMP_DATES})
    config["filters"] = {"cards": {"()": MaskCardNumbers}}
    for handler in config["handlers"].values():
        handler["filters"] = ["cards"]
    config["loggers"]["palier"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def mask_handlers(logger: logging.Logger | None = None) -> None:
    """Put the mask on every handler of ``logger`` (the root logger by default), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskCardNumbers) for f in handler.filters):
            handler.addFilter(MaskCardNumbers())
