"""French and English for the web pages: message catalogs, ``t(key, **params)``, and choosing the language.

Catalogs are YAML files under ``web/locales/``, one per area of the site (``common``, ``portal``,
``howto``, …), each mapping a key to its ``fr`` and ``en`` text side by side, so that a message is never
added in one language only (a test checks it). Texts are ``str.format`` templates: ``{points}``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from fastapi import Request

from palier.errors import PalierError
from palier.text import points_word

Language = Literal["fr", "en"]
LANGUAGES: tuple[Language, ...] = ("fr", "en")
DEFAULT_LANGUAGE: Language = "fr"
LANG_COOKIE = "lang"
LOCALES_DIR = Path(__file__).parent / "locales"


class _OnceLoader(yaml.SafeLoader):
    """YAML where a key given twice in one mapping is an error (plain YAML keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ValueError(f"message {key!r} is defined twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@functools.cache
def catalogs() -> dict[str, dict[str, str]]:
    """{language: {key: text}} from every locale file (read once); a message defined twice is an error."""
    found: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for path in sorted(LOCALES_DIR.glob("*.yaml")):
        entries = yaml.load(path.read_text(encoding="utf-8"), Loader=_OnceLoader) or {}  # a SafeLoader
        for key, texts in entries.items():
            if key in found["fr"]:
                raise ValueError(f"{path.name}: message {key!r} is defined twice")
            for lang in LANGUAGES:
                found[lang][key] = str(texts[lang])
    return found


def translate(language: str, key: str, **params: Any) -> str:
    """The message ``key`` in ``language``; an unknown key shows as itself, so a gap is visible, not fatal."""
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    text = catalogs()[language].get(key, key)
    if params and language == "fr":
        text = elided(text, params)
    return text.format(**params) if params else text


_DE_BEFORE = re.compile(r"\b([Dd])e \{(\w+)\}")
_ELIDING = set("aeiouyhàâäéèêëîïôöùûüœæ")


def elided(text: str, params: Mapping[str, Any]) -> str:
    """French elision before a vowel or a mute h: "Rôle de {name}" for Inès Laurent reads "Rôle d'Inès
    Laurent" (a name is taken to begin with a mute h: d'Hélène, d'Hugo)."""

    def before(found: re.Match[str]) -> str:
        value = str(params.get(found[2], ""))
        return f"{found[1]}'{{{found[2]}}}" if value[:1].lower() in _ELIDING else found[0]

    return _DE_BEFORE.sub(before, text)


def translate_count(language: str, key: str, number: int, **params: Any) -> str:
    """:func:`translate`, agreeing with ``number``: ``key_one`` when it is singular (1, and 0 in French)
    and the catalogue has that form ("1 point expire", "2 points expirent")."""
    singular = abs(number) == 1 or (language == "fr" and number == 0)
    catalog = catalogs()[language if language in LANGUAGES else DEFAULT_LANGUAGE]
    return translate(language, f"{key}_one" if singular and f"{key}_one" in catalog else key, **params)


def refusal(
    language: str, code: str, detail: str, figures: Mapping[str, Any] | None = None, *, points_name: str = "points"
) -> str:
    """What a refusal says on a page: ``refusal.<code>.figures`` when the refusal carries the figures it names
    (points available and needed…), with the program's name for points; otherwise, in English, its detail,
    and in French the catalogue's words for its stable code (the detail is English), ``refusal.<code>``."""
    catalog = catalogs()[language if language in LANGUAGES else DEFAULT_LANGUAGE]
    with_figures = catalog.get(f"refusal.{code}.figures")
    if with_figures is not None and figures:
        shown = {name: grouped(value, language) for name, value in figures.items()}
        try:
            text = with_figures.format(**shown, name=_POINTS)
        except (KeyError, IndexError, ValueError):
            pass
        else:  # "{available} {name}": the program's name for points, agreeing with the figure before it
            return _AFTER_FIGURE.sub(lambda found: _counted(found[1], points_name, language), text)
    return detail if language == "en" else catalog.get(f"refusal.{code}", detail)


def grouped(value: Any, language: str) -> Any:
    """A figure as the page writes it: 12 500 in French, 12,500 in English."""
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return f"{value:,}".replace(",", "\u202f" if language == "fr" else ",")


_POINTS = "\x00points"  # where a refusal's words put the program's name for points
_AFTER_FIGURE = re.compile(r"(\d[\d\u202f,]*) \x00points")


def _counted(figure: str, points_name: str, language: str) -> str:
    return f"{figure} {points_word(int(re.sub(r'[^0-9]', '', figure)), points_name, language)}"


MONEY_FIGURES = frozenset({"refundable", "min_order"})  # figures in minor units, written as money


def said(
    language: str, error: PalierError, *, points_name: str = "points", money: Callable[[int], str] | None = None
) -> str:
    """:func:`refusal` of an engine refusal; ``points_name``: the program's name for points; ``money``: how the
    page writes an amount ("20,00 €"), for the refusals whose figures are amounts (without it, their words
    without the figures: a count of cents is never shown as the amount)."""
    figures: Mapping[str, Any] | None = error.extra
    if figures and not MONEY_FIGURES.isdisjoint(figures):
        figures = {k: money(v) if k in MONEY_FIGURES else v for k, v in figures.items()} if money else None
    return refusal(language, error.code, error.detail, figures, points_name=points_name)


def translator(language: str) -> Callable[..., str]:
    return functools.partial(translate, language)


def pick(language: str | None) -> Language | None:
    if language is None:
        return None
    code = language.strip().lower()[:2]
    return "fr" if code == "fr" else "en" if code == "en" else None


def from_accept_language(header: str) -> Language | None:
    """The first of our languages in an ``Accept-Language`` header, by the client's weights."""
    weighted = []
    for n, part in enumerate(header.split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        weighted.append((-weight, n, tag))
    for _, _, tag in sorted(weighted):
        if (found := pick(tag)) is not None:
            return found
    return None


def request_language(request: Request, preferred: str | None = None) -> Language:
    """``?lang=`` first (the visible switch), then the ``lang`` cookie, then ``preferred`` (e.g. the
    signed-in member's profile), then the browser's ``Accept-Language``, then French."""
    return (
        pick(request.query_params.get("lang"))
        or pick(request.cookies.get(LANG_COOKIE))
        or pick(preferred)
        or from_accept_language(request.headers.get("accept-language", ""))
        or DEFAULT_LANGUAGE
    )


def localized(value: Any, language: str) -> str:
    """A ``{fr, en}`` value (a model or a mapping) in ``language``."""
    if isinstance(value, Mapping):
        return str(value.get(language) or value.get("en") or "")
    return str(getattr(value, language, None) or getattr(value, "en", ""))
