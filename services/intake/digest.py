"""HTTP Digest authentication (RFC 7616, MD5, qop=auth) for ODK Collect, server side.

Written here because no maintained ASGI library offers the server side; the client side
used in tests is httpx's own ``DigestAuth``, an independent implementation. Nonces are
signed timestamps: any replica started with the same ``DIGEST_NONCE_SECRET`` accepts them,
and an expired one gets ``stale=true`` (Collect then retries without asking the user again).
Basic is accepted only over HTTPS (as the request's scheme says: a proxy's
``X-Forwarded-Proto`` counts only from ``TRUSTED_PROXIES``, see ``services/web.py``).

A captured ``Authorization`` header must not open a second request: each nonce's highest
nonce count (``nc``) is remembered until the nonce expires, and a request whose ``nc`` is not
above it is refused with ``stale=true`` — a client that raced itself simply retries with a
fresh nonce, a replayer learns nothing. Without ``qop`` (RFC 2069) there is no ``nc``: such a
header is good for one request. ``NonceCounts`` is the port: ``InMemoryNonceCounts`` when one
intake process serves (embedded, SQLite ledger), ``PostgresNonceCounts``
(``services/intake/postgres/nonce_counts.py``) when replicas share the ledger, so a header
replayed to another replica is refused there too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.request import parse_http_list, parse_keqv_list

from services.intake.accounts import Account, Accounts, ha1

NONCE_LIFETIME_S = 300
_NC = re.compile(r"^[0-9a-fA-F]{8}$")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass(frozen=True)
class AuthResult:
    """``account`` when authenticated. Otherwise: ``stale`` (a fresh nonce will do, no new
    password), ``failed`` (credentials were given and are wrong: a guess, for the throttle)."""

    account: Account | None
    stale: bool = False
    failed: bool = False
    method: str = ""  # digest | basic
    username: str = ""  # as claimed; a known account's name only


class NonceCounts(Protocol):
    """The highest ``nc`` used with each nonce, kept while the nonce is valid."""

    def advance(self, nonce: str, issued_at: float, nc: int) -> bool:
        """Record ``nc`` for ``nonce`` (a nonce of ours, checked); False when it is not above the
        highest seen (a replay)."""


class InMemoryNonceCounts:
    """``NonceCounts`` of one process, bounded: past ``max_nonces`` live nonces a new one is refused."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.time, max_nonces: int = 200_000):
        self._lifetime_s, self._clock, self._max = lifetime_s, clock, max_nonces
        self._highest: dict[str, tuple[int, float]] = {}  # nonce → (nc, issued at)
        self._inserted = 0
        self._lock = threading.Lock()

    def advance(self, nonce: str, issued_at: float, nc: int) -> bool:
        """Record ``nc`` for ``nonce``; False when it is not above the highest seen (a replay)."""
        with self._lock:
            seen = self._highest.get(nonce)
            if seen is not None and nc <= seen[0]:
                return False
            if seen is None:
                self._inserted += 1
                if self._inserted % 1024 == 0 or len(self._highest) >= self._max:
                    self._forget_expired()
                if len(self._highest) >= self._max:
                    return False  # fail safe: the client gets stale=true and a new nonce later
            self._highest[nonce] = (nc, issued_at)
            return True

    def _forget_expired(self) -> None:
        oldest = self._clock() - self._lifetime_s
        for nonce in [n for n, (_, issued) in self._highest.items() if issued < oldest]:
            del self._highest[nonce]


class DigestAuthenticator:
    def __init__(self, accounts: Accounts, secret: bytes | None = None, lifetime_s: int = NONCE_LIFETIME_S,
                 counts: NonceCounts | None = None):
        self.accounts = accounts
        self._secret = secret or secrets.token_bytes(32)
        self._lifetime_s = lifetime_s
        self._counts = counts or InMemoryNonceCounts(lifetime_s)

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        # Random too: two challenges in the same second must not share a nonce (and its counts).
        stamp = f"{int(time.time())}.{secrets.token_hex(8)}"
        return base64.b64encode(f"{stamp}:{self._sign(stamp)}".encode()).decode()

    def _nonce_issued_at(self, nonce: str) -> float | None:
        """When a nonce of ours was made; None if it is not one (forged, garbled)."""
        try:
            stamp, signature = base64.b64decode(nonce.encode(), validate=True).decode().split(":", 1)
            issued = float(stamp.split(".", 1)[0])
        except (ValueError, UnicodeDecodeError):
            return None
        return issued if hmac.compare_digest(signature, self._sign(stamp)) else None

    def challenge(self, stale: bool = False) -> str:
        return (f'Digest realm="{self.accounts.realm}", qop="auth", algorithm=MD5, '
                f'nonce="{self.new_nonce()}", opaque="{self._sign("opaque")}"' + (", stale=true" if stale else ""))

    def claimed_username(self, header: str | None) -> str | None:
        """The account a header names, if it is a known one (for the throttle, before checking)."""
        if not header:
            return None
        scheme, _, rest = header.partition(" ")
        name = None
        if scheme.lower() == "digest":
            name = parse_keqv_list(parse_http_list(rest)).get("username")
        elif scheme.lower() == "basic":
            name = _basic_credentials(rest)[0]
        return name if name and self.accounts.get(name) is not None else None

    def authenticate(self, method: str, header: str | None, https: bool, uri: str | None = None) -> AuthResult:
        """Check an Authorization header; ``uri`` (path and query) must match the digest's, if given."""
        if not header:
            return AuthResult(None)
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic":
            return self._basic(rest) if https else AuthResult(None, method="basic")
        if scheme.lower() != "digest":
            return AuthResult(None)
        params = parse_keqv_list(parse_http_list(rest))
        account = self.accounts.get(params.get("username", ""))
        failed = AuthResult(None, failed=True, method="digest", username=account.username if account else "")
        if account is None or params.get("realm") != self.accounts.realm:
            return failed
        if uri is not None and params.get("uri") != uri:
            return failed  # a response computed for another resource
        nonce = params.get("nonce", "")
        ha2 = _md5(f"{method}:{params.get('uri', '')}")
        if params.get("qop") == "auth":
            nc_text = params.get("nc", "")
            if not _NC.match(nc_text):
                return failed
            nc = int(nc_text, 16)
            expected = _md5(f"{account.ha1}:{nonce}:{nc_text}:{params.get('cnonce', '')}:auth:{ha2}")
        else:  # RFC 2069 compatibility, no qop: no nonce count, so the header is good once
            nc = 1
            expected = _md5(f"{account.ha1}:{nonce}:{ha2}")
        if not hmac.compare_digest(expected, params.get("response", "")):
            return failed  # checked whatever the nonce: a wrong password is a guess, and counted
        issued_at = self._nonce_issued_at(nonce)
        if issued_at is None or time.time() - issued_at > self._lifetime_s:
            # The right password on a nonce that is not (or no longer) ours — expired, or signed by a
            # replica or process with another secret: the client signs again, the user is not asked.
            return AuthResult(None, stale=True, method="digest", username=account.username)
        if not self._counts.advance(nonce, issued_at, nc):  # the same header again, or an older one
            return AuthResult(None, stale=True, method="digest", username=account.username)
        return AuthResult(account, method="digest", username=account.username)

    def _basic(self, encoded: str) -> AuthResult:
        username, password = _basic_credentials(encoded)
        account = self.accounts.get(username or "")
        if account is None or password is None or \
                not hmac.compare_digest(account.ha1, ha1(account.username, self.accounts.realm, password)):
            return AuthResult(None, failed=True, method="basic", username=account.username if account else "")
        return AuthResult(account, method="basic", username=account.username)


def _basic_credentials(encoded: str) -> tuple[str | None, str | None]:
    try:
        username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return (username, password) if sep else (username, None)
