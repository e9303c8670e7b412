"""Who may use the hub: users with scrypt password hashes, bearer tokens, sessions, CSRF tokens.

Pure Python and the standard library (``hashlib.scrypt``, ``hmac.compare_digest``, ``secrets``);
the web shell (:mod:`streams.hub.app`) decides what to answer. Nothing here reads the
environment or logs: the caller passes a users file path or a password in.

Users file (JSON)::

    {"users": [{"name": "alice", "password_hash": "scrypt$16384$8$1$<salt>$<key>"}],
     "tokens": [{"user": "reporting", "token_sha256": "<hex>"}]}

Make entries with ``python -m streams.hub hash-password`` and ``python -m streams.hub new-token``.

>>> store = UserStore.with_password("hub", "correct horse", n=2**10)
>>> store.authenticate("hub", "correct horse"), store.authenticate("hub", "wrong")
('hub', None)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.domain.time import HOUR, MINUTE, Millis
from streams.errors import ConfigurationError

# scrypt cost: 128 * r * n bytes = 16 MiB of memory per hash and about 50 ms of one core, the
# interactive-login parameters of the scrypt paper; memory-hard, so GPUs gain little.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
_MAXMEM = 64 * 1024 * 1024  # bytes; hashlib's default (32 MiB) is too tight past n = 2**14

MAX_NAME_LENGTH = 64
MAX_PASSWORD_LENGTH = 1024  # characters; scrypt's cost does not grow with it, but parsing does

SESSION_IDLE: Millis = 8 * HOUR  # a shift
SESSION_MAX_AGE: Millis = 12 * HOUR  # a long shift; then sign in again
MAX_SESSIONS = 10_000

TOKEN_PREFIX = "sgh_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(
    password: str,
    *,
    n: int = SCRYPT_N,
    r: int = SCRYPT_R,
    p: int = SCRYPT_P,
    salt: bytes | None = None,
) -> str:
    """``scrypt$n$r$p$salt$key`` (base64url) for a users file.

    >>> hash_password("x", n=2**10, salt=b"0" * 16).startswith("scrypt$1024$8$1$")
    True
    """
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=KEY_BYTES
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


@dataclass(frozen=True, slots=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, encoded: str) -> _Hash:
        parts = encoded.split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError("expected scrypt$n$r$p$salt$key")
        n, r, p = (int(x) for x in parts[1:4])
        if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * r * n > _MAXMEM:
            raise ValueError(f"unsupported scrypt parameters n={n} r={r} p={p}")
        return cls(n, r, p, _unb64(parts[4]), _unb64(parts[5]))

    def verify(self, password: str) -> bool:
        candidate = hashlib.scrypt(
            password.encode("utf-8"),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=_MAXMEM,
            dklen=len(self.key),
        )
        return hmac.compare_digest(candidate, self.key)


def token_digest(token: str) -> str:
    """The SHA-256 (hex) a users file stores for a bearer token.

    A token is 256 random bits, so a fast hash is enough: there is nothing to guess.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh bearer token: ``sgh_`` and 43 base64url characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_password() -> str:
    """A generated password for ``safeguarding run`` (about 130 bits)."""
    return secrets.token_urlsafe(16)


class UserStore:
    """Hub users (name -> scrypt hash) and bearer tokens (SHA-256 -> user name).

    Construct with :meth:`from_file`, :meth:`with_password` or directly from encoded hashes.
    """

    def __init__(self, users: Mapping[str, str], tokens: Mapping[str, str] | None = None) -> None:
        self._users: dict[str, _Hash] = {}
        for name, encoded in users.items():
            _check_name(name)
            try:
                self._users[name] = _Hash.parse(encoded)
            except ValueError as exc:
                raise ConfigurationError(f"user {name!r}: bad password hash: {exc}") from exc
        self._tokens: dict[str, str] = {}
        for digest, user in (tokens or {}).items():
            _check_name(user)
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigurationError(f"token of {user!r}: token_sha256 must be 64 hex digits")
            self._tokens[digest] = user
        # Unknown users still pay for one scrypt, with the strongest parameters in use, so the
        # answer time does not tell whether a name exists.
        strongest = max(self._users.values(), key=lambda h: h.n * h.r * h.p, default=None)
        n, r, p = (
            (SCRYPT_N, SCRYPT_R, SCRYPT_P)
            if strongest is None
            else (strongest.n, strongest.r, strongest.p)
        )
        self._decoy = _Hash.parse(hash_password(secrets.token_urlsafe(16), n=n, r=r, p=p))

    @classmethod
    def with_password(cls, name: str, password: str, *, n: int = SCRYPT_N) -> UserStore:
        """One user with this password (what ``safeguarding run`` does for ``hub``)."""
        return cls({name: hash_password(password, n=n)})

    @classmethod
    def from_json(cls, data: Any, *, source: str = "users file") -> UserStore:
        """From the parsed users file; raises ConfigurationError saying what is wrong where."""
        if not isinstance(data, dict):
            raise ConfigurationError(f"{source}: expected a JSON object with a 'users' list")
        users: dict[str, str] = {}
        for i, entry in enumerate(data.get("users", [])):
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("name"), str)
                or (not isinstance(entry.get("password_hash"), str))
            ):
                raise ConfigurationError(
                    f"{source}: users[{i}] needs string fields 'name' and 'password_hash'"
                )
            if entry["name"] in users:
                raise ConfigurationError(f"{source}: users[{i}]: duplicate name")
            users[entry["name"]] = entry["password_hash"]
        tokens: dict[str, str] = {}
        for i, entry in enumerate(data.get("tokens", [])):
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("user"), str)
                or (not isinstance(entry.get("token_sha256"), str))
            ):
                raise ConfigurationError(
                    f"{source}: tokens[{i}] needs string fields 'user' and 'token_sha256'"
                )
            tokens[entry["token_sha256"].lower()] = entry["user"]
        try:
            return cls(users, tokens)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {exc}") from exc

    @classmethod
    def from_file(cls, path: Path) -> UserStore:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"users file {path}: cannot read: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigurationError(f"users file {path}: not JSON: {exc}") from exc
        return cls.from_json(data, source=f"users file {path}")

    def names(self) -> list[str]:
        """Users who can sign in or hold a token, sorted (for the page's assignee list)."""
        return sorted(set(self._users) | set(self._tokens.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._users or name in self._tokens.values()

    def authenticate(self, name: str, password: str) -> str | None:
        """The user name if the password is right, else None: the same for an unknown name.

        Costs one scrypt either way (about 50 ms of CPU: call it off the event loop).
        """
        stored = self._users.get(name) if len(name) <= MAX_NAME_LENGTH else None
        if len(password) > MAX_PASSWORD_LENGTH:
            password = ""
        ok = (stored or self._decoy).verify(password)
        return name if ok and stored is not None else None

    def user_for_token(self, token: str) -> str | None:
        """The user a bearer token belongs to, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        # Looked up by its SHA-256: a lookup's timing can at most reveal bits of the digest of
        # a 256-bit random secret, which does not help to forge it (the usual API-key scheme).
        return self._tokens.get(token_digest(token))

    def set_password(self, name: str, password: str, *, n: int = SCRYPT_N) -> None:
        """Add ``name`` with this password, or change its password."""
        _check_name(name)
        self._users[name] = _Hash.parse(hash_password(password, n=n))

    def add_token(self, user: str) -> str:
        """Issue a bearer token for ``user`` (kept in memory only) and return it."""
        _check_name(user)
        token = new_token()
        self._tokens[token_digest(token)] = user
        return token


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable() or name.strip() != name:
        raise ConfigurationError(
            f"user name {name[:MAX_NAME_LENGTH]!r}: 1 to {MAX_NAME_LENGTH} printable characters"
        )


def load_users(
    *, users_file: Path | None, hub_password: str | None, hub_user: str = "hub"
) -> tuple[UserStore, str | None]:
    """The hub's users, and the password generated for ``hub_user`` if one was.

    - ``users_file`` given: its users and tokens (plus ``hub_user`` if ``hub_password`` is set);
    - else ``hub_password`` (``SAFEGUARDING_HUB_PASSWORD``) for ``hub_user``;
    - else a generated password for ``hub_user``, returned so the caller can print it once.
    """
    generated: str | None = None
    if users_file is not None:
        store = UserStore.from_file(users_file)
        if hub_password:
            store.set_password(hub_user, hub_password)
        return store, None
    if not hub_password:
        generated = hub_password = new_password()
    return UserStore.with_password(hub_user, hub_password), generated


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    csrf_token: str
    """Sent back by the page on every state-changing request (header or form field)."""
    created_at: Millis
    last_seen: Millis


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request, and how they proved it."""

    user: str
    via: str
    """``session`` (cookie: needs a CSRF token to change state) or ``token`` (bearer)."""
    session_key: str | None = None
    """For sessions: the store key (a digest of the cookie, never the cookie itself)."""
    csrf_token: str | None = None


class SessionStore:
    """Server-side sessions: the cookie holds 256 random bits, the store keeps its digest."""

    def __init__(
        self,
        now: Callable[[], Millis],
        *,
        idle: Millis = SESSION_IDLE,
        max_age: Millis = SESSION_MAX_AGE,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._now = now
        self._idle = idle
        self._max_age = max_age
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str) -> tuple[str, Session]:
        """A new session for ``user``: returns the cookie value and the session."""
        cookie = secrets.token_urlsafe(32)
        now = self._now()
        session = Session(user, secrets.token_urlsafe(32), now, now)
        self._sessions[token_digest(cookie)] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return cookie, session

    def get(self, cookie: str) -> Principal | None:
        """The principal of a live session cookie, or None (unknown, idle or too old)."""
        if not cookie or len(cookie) > 100:
            return None
        key = token_digest(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._now()
        if now - session.last_seen > self._idle or now - session.created_at > self._max_age:
            del self._sessions[key]
            return None
        self._sessions[key] = Session(session.user, session.csrf_token, session.created_at, now)
        self._sessions.move_to_end(key)
        return Principal(session.user, "session", key, session.csrf_token)

    def alive(self, key: str) -> bool:
        """Whether the session with this store key still exists and has not expired."""
        session = self._sessions.get(key)
        if session is None:
            return False
        now = self._now()
        return now - session.last_seen <= self._idle and now - session.created_at <= self._max_age

    def drop(self, key: str) -> None:
        self._sessions.pop(key, None)

    def drop_user(self, users: Iterable[str]) -> None:
        """Sign these users out everywhere."""
        gone = set(users)
        for key in [k for k, s in self._sessions.items() if s.user in gone]:
            del self._sessions[key]


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time equality of two secrets; False if either is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class LoginThrottle:
    """Refuse sign-in from a client after too many failures in a window (brute force).

    Keyed by the client's address; the answer is the same for known and unknown names.
    """

    def __init__(
        self,
        now: Callable[[], Millis],
        *,
        max_failures: int = 10,
        window: Millis = 15 * MINUTE,
        max_clients: int = 10_000,
    ) -> None:
        self._now = now
        self._max_failures = max_failures
        self._window = window
        self._max_clients = max_clients
        self._failures: OrderedDict[str, list[Millis]] = OrderedDict()

    def _recent(self, client: str) -> list[Millis]:
        cutoff = self._now() - self._window
        recent = [t for t in self._failures.get(client, []) if t > cutoff]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= self._max_failures

    def failed(self, client: str) -> None:
        recent = self._recent(client)
        recent.append(self._now())
        self._failures[client] = recent
        self._failures.move_to_end(client)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
