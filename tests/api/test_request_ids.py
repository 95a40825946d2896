"""Matching what a client was answered to the server's log: every answer carries ``X-Request-ID`` (the one the
client or its proxy sent, when it is a plain token, else one of ours); a 500 or a 503 says it in its body too,
and the one line the server logs for it names it. Errors from the database never log the values sent with
the statement (a webhook's secret, a session token, an e-mail address)."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from palier.api import app as app_module
from palier.db import Database


def test_every_answer_carries_a_request_id(client: TestClient) -> None:
    ours = client.get("/health").headers["X-Request-ID"]
    assert ours and ours != client.get("/health").headers["X-Request-ID"]  # one per request
    given = client.get("/health", headers={"X-Request-ID": "lb-7f3a9c.42"})
    assert given.headers["X-Request-ID"] == "lb-7f3a9c.42"  # a proxy's id, kept: one id along the way
    for odd in ("a" * 201, "two words", "semi;colon", "<script>"):
        assert client.get("/health", headers={"X-Request-ID": odd}).headers["X-Request-ID"] != odd


def test_a_500_names_its_request_in_the_answer_and_in_its_one_log_line(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_db: Database) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(app_module, "_not_servable", broken)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.INFO, logger="palier"):
        answer = client.get("/health", headers={"X-Request-ID": "till-7-0042"})
    assert answer.status_code == 500 and answer.json()["code"] == "internal_error"
    assert answer.json()["request_id"] == answer.headers["X-Request-ID"] == "till-7-0042"
    logged = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(logged) == 1 and "till-7-0042" in logged[0].getMessage(), [r.getMessage() for r in logged]
    assert logged[0].exc_info is not None  # with its traceback


def test_a_database_error_does_not_repeat_the_values_sent(db: Database) -> None:
    secret = "whsec_do-not-log-me-0123456789"
    with pytest.raises(DBAPIError) as raised, db.read() as conn:
        conn.execute(text("SELECT secret FROM no_such_table WHERE secret = :secret"), {"secret": secret})
    assert "no_such_table" in str(raised.value) and secret not in str(raised.value)
