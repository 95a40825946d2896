"""Browser test harness: a real uvicorn server per engine, one headless Chromium per session, screenshots.

``live_server`` serves the app in a background thread on a free localhost port, against the session's
migrated database (SQLite always, PostgreSQL when ``PALIER_TEST_DATABASE_URL`` is set), with a frozen
clock the tests share. ``page`` is a fresh browser context (no cookies) per test, in Debian's
``/usr/bin/chromium`` driven by Playwright (never ``playwright install``). ``shoot(page, name)`` saves
``test-artifacts/screenshots/<test>-<name>-<engine>.png``. Without Chromium the tests are skipped (under
CI they fail). Programs are made through the API; each one's ledger must verify clean at teardown.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from palier.api.app import create_app
from palier.clock import FrozenClock
from palier.config import Settings
from palier.db import Database
from tests.api.conftest import CARD_KEY, OPERATOR_TOKEN, program_maker
from tests.api.helpers import ApiProgram
from tests.conftest import ENGINES, under_ci

CHROMIUM = Path(os.environ.get("PALIER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
MOBILE = {"width": 390, "height": 844}
SECRET_KEY = "secret-key-for-web-tests"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session", autouse=True)
def operator_token() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PALIER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        yield OPERATOR_TOKEN


@dataclass
class LiveServer:
    """The app served over real HTTP: ``url``, the ``app``, its ``db`` and the ``clock`` it reads."""

    url: str
    app: FastAPI
    db: Database
    clock: FrozenClock
    engine: str


def _serve(app: FastAPI) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread, port


@pytest.fixture(scope="session", params=ENGINES)
def live_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    db: Database = request.getfixturevalue(f"{request.param}_db")
    clock = FrozenClock(START)
    url = db.engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url, card_hash_key=CARD_KEY, secret_key=SECRET_KEY)
    app = create_app(settings, db=db, clock=clock)
    server, thread, port = _serve(app)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", app=app, db=db, clock=clock, engine=request.param)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def web(live_server: LiveServer) -> Iterator[LiveServer]:
    """The live server, with its clock put back to the start after the test."""
    live_server.clock.set(START)
    yield live_server
    live_server.clock.set(START)


@pytest.fixture
def api(web: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client of the live server (for the API calls that set a test up)."""
    with httpx.Client(base_url=web.url, timeout=30) as client:
        yield client


@pytest.fixture
def new_program(web: LiveServer, api: httpx.Client) -> Iterator[Callable[..., ApiProgram]]:
    """Make programs through the API; each one's ledger must verify clean when the test ends."""
    with program_maker(web.db, api) as make:  # type: ignore[arg-type]
        yield make


# --- the browser ---


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM}: install Debian's chromium package to run the browser tests"
        if under_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any, web: LiveServer) -> Iterator[Callable[..., Any]]:
    """Open pages in fresh browser contexts (own cookies): ``new_page(viewport=MOBILE, locale="en-GB")``."""
    contexts = []

    def make(viewport: dict[str, int] | None = None, locale: str = "fr-FR") -> Any:
        context = browser.new_context(viewport=viewport or DESKTOP, locale=locale, base_url=web.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    """A desktop-sized page in a fresh context."""
    return new_page()


# Run in the page: what an accessibility audit would flag first on our pages.
_AUDIT = """() => {
  const problems = [];
  const named = (el) => el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!named(el)) problems.push('no label: ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (!(el.innerText.trim() || el.getAttribute('aria-label'))) problems.push('no name: ' + el.outerHTML.slice(0, 80));
  }
  for (const role of ['main', 'header', 'footer', 'nav']) {
    if (!document.querySelector(role)) problems.push('no ' + role + ' landmark');
  }
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  if (!['fr', 'en'].includes(document.documentElement.lang)) problems.push('no page language');
  for (const bar of document.querySelectorAll('[role=progressbar]')) {
    const named = bar.getAttribute('aria-label') && bar.getAttribute('aria-valuenow') !== null;
    if (!named) problems.push('unnamed progress bar');
  }
  return problems;
}"""


def assert_accessible(page: Any) -> None:
    """Labels on every field, names on every button and link, landmarks, one h1, the page's language."""
    problems = page.evaluate(_AUDIT)
    assert problems == [], f"{page.url}: {problems}"


@pytest.fixture
def shoot(request: pytest.FixtureRequest, web: LiveServer) -> Callable[[Any, str], Path]:
    """``shoot(page, "dashboard")``: a full-page screenshot under test-artifacts/screenshots/."""
    test = re.sub(r"[^A-Za-z0-9_]+", "-", request.node.originalname).strip("-")

    def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{test}-{name}-{web.engine}.png"
        page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top of the picture
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
