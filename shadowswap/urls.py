"""The one place a database URL is rendered for people: logs, errors, hooks, status.

A password can reach a URL in two ways: in the userinfo (``user:secret@host``), which
SQLAlchemy's ``hide_password`` masks, or as a query parameter (``?password=secret``, which
PyMySQL and psycopg also accept, and PyMySQL's ``passwd``), which it does not. Every URL shown
goes through :func:`mask_url`, and every driver message that may quote the URL back through
:func:`mask_secrets`, so neither way leaks.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
#: query parameters that carry a secret, by the drivers shadowswap speaks to (lower case)
SECRET_PARAMETERS = frozenset({"password", "passwd", "sslpassword", "pwd"})

# key=value inside a query string or a libpq connection string: the value up to & ; or whitespace
_SECRET_PAIR = re.compile(
    r"(?P<key>\b(?:" + "|".join(sorted(SECRET_PARAMETERS)) + r"))(?P<sep>\s*=\s*)(?P<value>'[^']*'|[^&;\s]+)",
    re.IGNORECASE,
)
# scheme://user:secret@host: the secret up to the last @ before the host
_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?P<at>@)", re.IGNORECASE)


def secrets_of(url: sa.URL) -> list[str]:
    """Every password the URL carries, however given (to scrub them from driver messages)."""
    found = [str(url.password)] if url.password else []
    for key, value in url.query.items():
        if key.lower() in SECRET_PARAMETERS:
            found.extend([value] if isinstance(value, str) else list(value))
    return [s for s in found if s]


def mask_url(url: sa.URL | str) -> str:
    """The URL as shown to people: passwords in the userinfo and in the query replaced by ``***``."""
    if isinstance(url, str):
        text = url
        try:
            url = make_url(text)
        except (ArgumentError, ValueError):
            # not a URL SQLAlchemy can parse (a typo'd port): mask what looks like a secret anyway
            return mask_secrets(text)
    # rendered first, masked after: the query values come out percent-encoded, so a secret holds no
    # ``&`` and its key=value pair is exactly what _SECRET_PAIR matches
    return _SECRET_PAIR.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", url.render_as_string(hide_password=True))


def mask_secrets(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with the given secrets, ``password=…`` pairs and ``://user:…@`` userinfo masked."""
    for secret in sorted(secrets or [], key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _SECRET_PAIR.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)
    return _USERINFO.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
