"""A problem's title reads as words, with acronyms as they are written (``Invalid API key``); the code stays."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from palier.errors import title_of


@pytest.mark.parametrize(
    ("code", "title"),
    [
        ("invalid_api_key", "Invalid API key"),
        ("missing_api_key", "Missing API key"),
        ("invalid_external_id", "Invalid external ID"),
        ("invalid_database_url", "Invalid database URL"),
        ("csv_missing_columns", "CSV missing columns"),
        ("invalid_yaml", "Invalid YAML"),
        ("nul_character", "NUL character"),
        ("return_exceeds_purchase", "Return exceeds purchase"),
        ("insufficient_points", "Insufficient points"),
        ("identity_taken", "Identity taken"),
    ],
)
def test_a_title_writes_acronyms_as_they_are_written(code: str, title: str) -> None:
    assert title_of(code) == title


def test_a_refused_api_key_answers_with_a_title_that_reads_well_and_the_same_code(client: TestClient) -> None:
    answer = client.get("/v1/program", headers={"Authorization": "Bearer nope.nope"})
    assert answer.status_code == 401
    body = answer.json()
    assert (body["code"], body["title"]) == ("invalid_api_key", "Invalid API key")
