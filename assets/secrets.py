"""Secrets stay out of storage: an endpoint's URL may carry credentials (`https://user:key@host/v1`, or a key in
its query string); what is stored, logged or fingerprinted is the URL without them. The URL with them is only
ever used to connect."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
# Query parameters that carry credentials in the wild (`?key=` for Google's APIs, `?api-key=` for Azure's, SAS
# signatures, tokens).
_SECRET_PARAMETER = re.compile(r"(key|token|secret|password|passwd|sig|signature|auth|credential)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` without the user and password before its host and with secret-looking query values replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED   # not a URL we can take apart: store nothing of it
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(name, REDACTED if _SECRET_PARAMETER.search(name) else value) for name, value in pairs],
                          safe=REDACTED)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_has_credentials(url: str) -> bool:
    """Whether `url` carries a user, a password or a secret-looking query parameter."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return "@" in parts.netloc or any(_SECRET_PARAMETER.search(name)
                                      for name, _ in parse_qsl(parts.query, keep_blank_values=True))


def redact_password(connection_string: str) -> str:
    """A libpq connection string (`host=... password=...`, as a DuckLake catalog is named) as it may be printed or
    logged: its password replaced."""
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", connection_string)
