"""Secrets kept out of what is stored (assets/secrets.py): credentials stripped from URLs."""

import pytest

from assets.secrets import redact_url, url_has_credentials

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("url", "stored"), [
    ("https://user:sk-secret@api.example.com/v1", "https://api.example.com/v1"),
    ("https://sk-secret@api.example.com:8443/v1", "https://api.example.com:8443/v1"),
    ("https://api.example.com/v1?api-key=sk-secret&region=eu", "https://api.example.com/v1?api-key=REDACTED&region=eu"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
])
def test_credentials_are_stripped_from_urls(url, stored):
    assert redact_url(url) == stored
    assert "sk-secret" not in redact_url(url)
    assert url_has_credentials(url) == (url != stored)
