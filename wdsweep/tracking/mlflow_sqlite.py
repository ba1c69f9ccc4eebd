"""A local MLflow SQLite store whose creation was cut short (a full disk, a kill): told apart
from a store in use, and made anew when it holds nothing.

MLflow makes a new database's first tables, then runs its migrations one by one (about 40),
and SQLite keeps what each statement did: a creation cut short leaves a file at some schema
revision with the next migration half done (a table made, its index not). Every later open
runs that migration again and fails ("table spans already exists"), and so does
`mlflow db upgrade`: the store can never be opened again, and every export to it fails.

So when opening a local SQLite store fails, and its schema revision is one this MLflow knows
short of its newest (or it has none), the store was left so by its creation:
- holding no run and no experiment but MLflow's "Default", it holds nothing: it is removed
  (with its -journal, -wal and -shm files) and made again, with one warning line; when the
  failure was the disk being full, it is only removed (the export fails with that error, and
  no broken store is left behind for the next one);
- holding runs (a migration of a store in use, after an MLflow upgrade, cut short), it is left
  as it is, and the error says in one line what to do: restore it from its backup, or move it
  aside and export the job folders again to a new store (their files are the record).
A store at this MLflow's newest revision, or at one it does not know (a newer MLflow's), is
never touched: its error is MLflow's own.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Callable, Optional, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_NO_REVISION = "none"


class HalfMigratedStore(RuntimeError):
    """A half-migrated store that holds runs: one line saying how to recover."""


def open_or_remake(db: Path, uri: str, open_store: Callable[[], T]) -> T:
    """open_store(), which opens the SQLite store `db` at `uri`; a store its creation left
    half-migrated and empty is removed and made again (see the module). The caller holds the
    lock every process opens the store under."""
    try:
        return open_store()
    except Exception as err:  # noqa: BLE001 - any failure: told apart below, else raised as it was
        revision = _half_migrated_revision(db)
        if revision is None:
            raise
        if _holds_records(db):
            raise HalfMigratedStore(
                f"the MLflow database {db} is half-migrated (schema {revision}, not {_head()}: a migration "
                "was cut short) and holds runs: restore it from its backup, or move it aside and export "
                "the job folders again (python -m wdsweep.mlflow_export FOLDER ...)") from err
        _forget_engine(uri)
        for path in (db, *(db.with_name(db.name + suffix) for suffix in ("-journal", "-wal", "-shm"))):
            path.unlink(missing_ok=True)
        if "database or disk is full" in str(err):
            raise  # made here on a full disk: removed, not made again until there is room
        log.warning("the MLflow database %s was left half-migrated by its creation (schema %s; %s: %s) and "
                    "holds no run: made anew", db, revision, type(err).__name__, " ".join(str(err).split())[:200])
    return open_store()


def _head() -> str:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    return ScriptDirectory.from_config(_get_alembic_config("sqlite://")).get_current_head()


def _half_migrated_revision(db: Path) -> Optional[str]:
    """The store's schema revision when it is one this MLflow knows short of its newest, or
    "none" for MLflow's tables without a revision; None otherwise (not a store, at the newest
    revision, or a newer MLflow's)."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    if not db.is_file() or db.stat().st_size == 0:
        return None
    try:
        with _read_only(db) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "experiments" not in tables:
                return None  # not MLflow's tables: not ours to judge
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall() \
                if "alembic_version" in tables else []
    except sqlite3.Error:
        return None
    script = ScriptDirectory.from_config(_get_alembic_config("sqlite://"))
    revision = rows[0][0] if rows else None
    if revision == script.get_current_head():
        return None
    if revision is not None and revision not in {r.revision for r in script.walk_revisions()}:
        return None  # a newer MLflow's store
    return revision or _NO_REVISION


def _holds_records(db: Path) -> bool:
    """Whether the store holds a run, or an experiment other than MLflow's "Default" (id 0)."""
    try:
        with _read_only(db) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
            experiments = conn.execute("SELECT COUNT(*) FROM experiments WHERE experiment_id != 0").fetchone()[0]
    except sqlite3.Error:
        return True  # cannot tell: keep it
    return bool(runs or experiments)


def _read_only(db: Path) -> "contextlib.closing[sqlite3.Connection]":
    """A read-only connection to the file, closed on leaving."""
    return contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True))


def _forget_engine(uri: str) -> None:
    """MLflow keeps one SQLAlchemy engine per URI for the process, with connections to the file
    about to be removed: disposed of, so that the store is made in the new file."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engines = getattr(SqlAlchemyStore, "_engine_map", None)
    engine = engines.pop(uri, None) if isinstance(engines, dict) else None
    if engine is not None:
        engine.dispose()
