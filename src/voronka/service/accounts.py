"""Accounts of the web app: logins with argon2 password hashes, browser sessions, API tokens.

Terms:

- A *login* is the short name a user signs in with (``anna``); the user's ``name`` is the display name that deals
  name as their owner. A user without a login and a password cannot sign in (imported managers, for example).
- *Roles*: ``admin`` and ``head`` see and change everything; a ``manager`` sees and moves only the deals they own
  and sees only their own numbers. ``admin`` also manages users.
- A *session* is a random token kept in an HttpOnly cookie; only its SHA-256 is stored, with an expiry time and
  the session's CSRF token (sent back with every form).
- An *API token* (``vk_...``) is shown once when made; only its SHA-256 is stored. It acts as its user.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, select, update

from voronka.errors import InputError, NotFoundError
from voronka.store.engine import one_statement
from voronka.store.schema import api_tokens, users, web_sessions
from voronka.store.workspace import WorkspaceStore

ROLES = ("admin", "head", "manager")
LOCALES = ("en", "ru")
SESSION_DAYS = 14
MIN_PASSWORD = 8
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters (RFC 9106 low-memory)
# Checked against when the login is unknown, so that a wrong login costs as long as a wrong password. Made on
# first use, not at import: an argon2 hash takes a third of a second, and every command imports this module.
_DUMMY_HASH: str | None = None


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash new passwords with ``hasher`` (tests use cheap argon2 parameters; old hashes still verify)."""
    global _HASHER, _DUMMY_HASH
    _HASHER = hasher
    _DUMMY_HASH = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:  # two threads may both make one here: either hash serves
        _DUMMY_HASH = _HASHER.hash("voronka-dummy-password")
    return _DUMMY_HASH


@dataclass(frozen=True, slots=True)
class Account:
    """A user who can sign in: ``name`` is the display name deals are owned by."""

    id: int
    name: str
    login: str | None
    role: str
    locale: str | None

    @property
    def sees_all(self) -> bool:
        """Admins and heads see every deal; managers only their own."""
        return self.role in ("admin", "head")


@dataclass(frozen=True, slots=True)
class Session:
    account: Account
    csrf: str
    expires_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def token_digest(token: str) -> str:
    """What the store keeps of a session or API token (its SHA-256, hex): the key a token is looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_login(login: str) -> str:
    login = login.strip()
    if not login or len(login) > 100 or any(c.isspace() for c in login):
        raise InputError(f"Malformed login {login!r}: use 1–100 characters without spaces, e.g. anna.")
    return login


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"The password is too short ({len(password)} characters): use at least {MIN_PASSWORD}.")
    return password


def _account(row: object) -> Account:
    return Account(row.id, row.name, row.login, row.role, row.locale)  # type: ignore[attr-defined]


_COLUMNS = (users.c.id, users.c.name, users.c.login, users.c.role, users.c.locale)


def add_account(
    store: WorkspaceStore,
    login: str,
    password: str,
    *,
    name: str | None = None,
    role: str = "manager",
    locale: str | None = None,
) -> Account:
    """Give a user a login and password, creating the user called ``name`` (default: the login) if needed.

    An existing user without a login (e.g. an imported manager) gets one; a login already taken is refused.
    """
    login = _check_login(login)
    _check_password(password)
    if role not in ROLES:
        raise InputError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    if locale is not None and locale not in LOCALES:
        raise InputError(f"Unknown language {locale!r}: use one of {', '.join(LOCALES)}.")
    display = (name or login).strip()
    hashed = _HASHER.hash(password)
    with store.transaction() as conn:
        if conn.scalar(select(users.c.id).where(users.c.login == login)) is not None:
            raise InputError(f"Login {login!r} is taken; pick another login.")
        row = conn.execute(select(users.c.id, users.c.login).where(users.c.name == display)).one_or_none()
        values = {"login": login, "password_hash": hashed, "role": role, "locale": locale}
        if row is None:
            uid = conn.execute(users.insert().values(name=display, **values)).inserted_primary_key[0]
        elif row.login is not None:
            raise InputError(f"User {display!r} already signs in as {row.login!r}; give another --name.")
        else:
            uid = row.id
            conn.execute(update(users).where(users.c.id == uid).values(**values))
        return _account(conn.execute(select(*_COLUMNS).where(users.c.id == uid)).one())


def set_password(store: WorkspaceStore, login: str, password: str) -> None:
    """Change a user's password and end their sessions."""
    hashed = _HASHER.hash(_check_password(password))
    with store.transaction() as conn:
        uid = conn.scalar(select(users.c.id).where(users.c.login == login))
        if uid is None:
            raise NotFoundError(f"No user with login {login!r}. List them with `voronka user list`.")
        conn.execute(update(users).where(users.c.id == uid).values(password_hash=hashed))
        conn.execute(delete(web_sessions).where(web_sessions.c.user_id == uid))


def accounts(store: WorkspaceStore) -> list[Account]:
    """Every user, with or without a login, by name."""
    with store.engine.connect() as conn:
        return [_account(r) for r in conn.execute(select(*_COLUMNS).order_by(users.c.name))]


def account(store: WorkspaceStore, user_id: int) -> Account:
    with store.engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(users.c.id == user_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"No user with id {user_id}.")
    return _account(row)


def authenticate(store: WorkspaceStore, login: str, password: str) -> Account | None:
    """The account when the login and password match, else None (no hint which one was wrong)."""
    with store.engine.connect() as conn:
        row = conn.execute(
            select(*_COLUMNS, users.c.password_hash, users.c.active).where(users.c.login == login.strip())
        ).one_or_none()
    stored = row.password_hash if row is not None and row.password_hash else _dummy_hash()
    try:
        _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row.password_hash or not row.active:
        return None
    if _HASHER.check_needs_rehash(stored):
        with store.transaction() as conn:
            conn.execute(update(users).where(users.c.id == row.id).values(password_hash=_HASHER.hash(password)))
    return _account(row)


def set_locale(store: WorkspaceStore, user_id: int, locale: str) -> None:
    if locale not in LOCALES:
        raise InputError(f"Unknown language {locale!r}: use one of {', '.join(LOCALES)}.")
    with store.transaction() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(locale=locale))


# -- sessions -----------------------------------------------------------------------------------------------


def start_session(store: WorkspaceStore, account: Account, *, days: float = SESSION_DAYS) -> tuple[str, Session]:
    """A new session: returns the cookie token (kept only by the browser) and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = _now()
    expires = now + timedelta(days=days)
    with store.transaction() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.expires_at < now))
        conn.execute(
            web_sessions.insert().values(
                token_hash=token_digest(token), user_id=account.id, csrf=csrf, created_at=now, expires_at=expires
            )
        )
    return token, Session(account, csrf, expires)


def session(store: WorkspaceStore, token: str) -> Session | None:
    """The live session of a cookie token, or None when it is unknown or expired."""
    with store.engine.connect() as conn:
        row = conn.execute(
            select(*_COLUMNS, web_sessions.c.csrf, web_sessions.c.expires_at, users.c.active)
            .select_from(web_sessions.join(users, users.c.id == web_sessions.c.user_id))
            .where(web_sessions.c.token_hash == token_digest(token))
        ).one_or_none()
    if row is None or row.expires_at <= _now() or not row.active:
        return None
    return Session(_account(row), row.csrf, row.expires_at)


def end_session(store: WorkspaceStore, token: str) -> None:
    with store.transaction() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.token_hash == token_digest(token)))


# -- API tokens ---------------------------------------------------------------------------------------------


def create_token(store: WorkspaceStore, login: str, name: str = "api") -> str:
    """Make an API token for the user with ``login``; the token is returned once and stored only as a hash."""
    token = "vk_" + secrets.token_urlsafe(32)
    with store.transaction() as conn:
        uid = conn.scalar(select(users.c.id).where(users.c.login == login))
        if uid is None:
            raise NotFoundError(f"No user with login {login!r}. Add one with `voronka user add`.")
        conn.execute(
            api_tokens.insert().values(
                token_hash=token_digest(token), user_id=uid, name=name.strip() or "api", created_at=_now()
            )
        )
    return token


_TOKEN_ACCOUNT = (  # built once: every API request runs it
    select(*_COLUMNS, users.c.active)
    .select_from(api_tokens.join(users, users.c.id == api_tokens.c.user_id))
    .where(api_tokens.c.token_hash == bindparam("digest"), api_tokens.c.revoked.is_(False))
)


def token_account(store: WorkspaceStore, token: str) -> Account | None:
    """The account an API token acts as, or None when the token is unknown or revoked."""
    with store.engine.connect().execution_options(**one_statement(store.engine)) as conn:
        row = conn.execute(_TOKEN_ACCOUNT, {"digest": token_digest(token)}).one_or_none()
    if row is None or not row.active:
        return None
    return _account(row)


# -- the demo's logins ----------------------------------------------------------------------------------------

DEMO_PASSWORD = "voronka-demo"


def add_demo_logins(store: WorkspaceStore, managers: tuple[str, ...], head: str) -> list[tuple[str, str, str]]:
    """Logins for the demo workspace: ``admin``, ``head`` and ``manager1``… for its managers, one password.

    Returns (login, display name, role) rows.
    """
    rows = [("admin", "Администратор", "admin"), ("head", head, "head")]
    rows += [(f"manager{i + 1}", m, "manager") for i, m in enumerate(managers)]
    hashed = _HASHER.hash(DEMO_PASSWORD)
    with store.transaction() as conn:
        for login, name, role in rows:
            uid = conn.scalar(select(users.c.id).where(users.c.name == name))
            values = {"login": login, "password_hash": hashed, "role": role, "locale": "ru"}
            if uid is None:
                conn.execute(users.insert().values(name=name, **values))
            else:
                conn.execute(update(users).where(users.c.id == uid).values(**values))
    return rows
