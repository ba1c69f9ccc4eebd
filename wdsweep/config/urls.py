"""Passwords in URLs (an Optuna storage, an MLflow tracking URI): split off, masked in
everything written or logged, and put back from an environment variable only to connect.

Secrets never reach a config file, a log line or an error message: `split_password` turns
postgresql://me:pw@host/db into postgresql://me:***@host/db plus "pw", the caller keeps the
password in the environment of its jobs, and `with_password` puts it back at connection time.

The forms a URL may hold a password in, all masked the same way:
- the user part, `scheme://user:PASSWORD@host/...` (RFC 1738, SQLAlchemy, requests);
- a query parameter, `...?password=PASSWORD` or `&passwd=PASSWORD` (libpq, SQLAlchemy and
  MySQL drivers pass them to the connection).
A password the driver reads itself (PGPASSWORD, ~/.pgpass, MLFLOW_TRACKING_PASSWORD) is never
in the URL: nothing of ours reads, copies or logs it.

A URL whose password cannot be masked safely is refused (UnsafePassword) rather than half
masked: after masking, the URL is read back as SQLAlchemy and urllib read it, and a password
either still finds that is not the mask (an unencoded "@" or whitespace in it, say) or two
different passwords in one URL make the caller stop with one line saying how to give it.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
QUERY_PASSWORD_KEYS = ("password", "passwd")

# scheme://user:PASSWORD@ ... : the password is what lies between the user's colon and the "@"
# (SQLAlchemy's own reading of a URL; a password holding "@" must be percent-encoded there too).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)@")
# ?password=PASSWORD or &passwd=PASSWORD, up to the next parameter (SQLAlchemy reads the query
# with parse_qsl: "&" ends a value, "#" does not). Quotes end it too: log lines quote URLs.
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd)=)(?P<password>[^&\s'\"]*)", re.IGNORECASE)
_FORMS = (_URL_PASSWORD, _QUERY_PASSWORD)


class UnsafePassword(ValueError):
    """A URL's password that masking would not hide whole; the message never holds it."""


def _passwords(url: str) -> List[str]:
    return [m["password"] for form in _FORMS for m in form.finditer(url)]


def _replace_passwords(text: str, new) -> str:
    """`text` with each password found replaced by new(password)."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + new(m["password"]) + "@", text)
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + new(m["password"]), text)


def _mask_all(text: str) -> str:
    return _replace_passwords(text, lambda _: MASK)


def is_masked(url: str) -> bool:
    """Whether the URL holds a masked password (its password is in the environment)."""
    return MASK in _passwords(url)


def split_password(url: str) -> Tuple[str, Optional[str]]:
    """postgresql://me:pw@host/db -> ("postgresql://me:***@host/db", "pw"), and likewise
    ...?password=pw; (url, None) when the URL holds no password (or only the mask). Raises
    UnsafePassword when the masked URL would still show one (see the module)."""
    secrets = {p for p in _passwords(url) if p != MASK}
    if len(secrets) > 1:
        raise UnsafePassword("it holds two different passwords")
    public = _mask_all(url) if secrets else url
    _check_nothing_left(public)
    return public, (secrets.pop() if secrets else None)


def _check_nothing_left(public: str) -> None:
    """The masked URL, read as SQLAlchemy and urllib read one, holds no password but the mask."""
    if "://" not in public:
        return
    found: List[Optional[str]] = []
    try:
        parts = urlsplit(public)
        found.append(parts.password)
        found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in QUERY_PASSWORD_KEYS]
    except ValueError:
        raise UnsafePassword("it is not a URL urllib can read") from None
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(public)
        found.append(parsed.password)
        for key, value in parsed.query.items():
            if key.lower() in QUERY_PASSWORD_KEYS:
                found += [value] if isinstance(value, str) else list(value)
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - not an SQLAlchemy URL (http://...): urllib's reading stands
        pass
    if any(p not in (None, "", MASK) for p in found):
        raise UnsafePassword("its password is not cleanly delimited: percent-encode '@', ':', '/', '&', "
                             "quotes and whitespace in it")


def shown_scheme(url: str) -> str:
    """What an error line may show of a URL that holds a password it could not mask: its scheme."""
    return url.split("://", 1)[0] + "://..." if "://" in url else "..."


def shown_url(url: str) -> str:
    """The URL as a line may show it: its password masked, or only its scheme when the
    password cannot be masked whole."""
    try:
        return split_password(url)[0]
    except UnsafePassword:
        return shown_scheme(url)


def hide_password(text: str, password: Optional[str] = None) -> str:
    """`text` (a URL, a log or error line) with every URL password masked, and `password`, if
    given, wherever else it appears (a driver may quote its connection string). Never raises."""
    text = _mask_all(text)
    return text.replace(password, MASK) if password else text


def with_password(url: str, env: str) -> str:
    """The URL to connect with: a masked password is replaced by the environment variable
    `env`, when set (each service has its own: the Optuna storage's, MLflow's)."""
    password = os.environ.get(env)
    if not password or not is_masked(url):
        return url
    return _replace_passwords(url, lambda found: password if found == MASK else found)
