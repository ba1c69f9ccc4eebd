"""Passwords in URLs (an Optuna storage, an MLflow tracking URI): split off, masked in
everything written or logged, and put back from an environment variable only to connect.

Secrets never reach a config file, a log line or an error message: `split_password` turns
postgresql://me:pw@host/db into postgresql://me:***@host/db plus "pw", the caller keeps the
password in the environment of its jobs, and `with_password` puts it back at connection time.
"""
from __future__ import annotations

import os
import re
from typing import Optional, Tuple

MASK = "***"

# scheme://user:PASSWORD@ ... : the password is what lies between the user's colon and the "@"
# (SQLAlchemy's own reading of a URL; a password holding "@" must be percent-encoded there too).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)@")


def split_password(url: str) -> Tuple[str, Optional[str]]:
    """postgresql://me:pw@host/db -> ("postgresql://me:***@host/db", "pw"); (url, None) when the
    URL holds no password (or only the mask)."""
    match = _URL_PASSWORD.search(url)
    if match is None or match["password"] == MASK:
        return url, None
    return url[:match.start("password")] + MASK + url[match.end("password"):], match["password"]


def hide_password(text: str, password: Optional[str] = None) -> str:
    """`text` (a URL, a log or error line) with every URL password masked, and `password`, if
    given, wherever else it appears (a driver may quote its connection string)."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", text)
    return text.replace(password, MASK) if password else text


def with_password(url: str, env: str) -> str:
    """The URL to connect with: a masked password is replaced by the environment variable
    `env`, when set (each service has its own: the Optuna storage's, MLflow's)."""
    match = _URL_PASSWORD.search(url)
    password = os.environ.get(env)
    if match is None or match["password"] != MASK or not password:
        return url
    return url[:match.start("password")] + password + url[match.end("password"):]
