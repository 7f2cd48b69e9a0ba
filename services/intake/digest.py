"""HTTP Digest authentication (RFC 7616, MD5, qop=auth) for ODK Collect, server side.

Written here because no maintained ASGI library offers the server side; the client side
used in tests is httpx's own ``DigestAuth``, an independent implementation. Nonces are
stateless: a timestamp signed with a per-process key, so any replica started with the
same ``DIGEST_NONCE_SECRET`` accepts them and an expired one gets ``stale=true`` (Collect
then retries without asking the user again). Basic is accepted only over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.request import parse_http_list, parse_keqv_list

from services.intake.accounts import Account, Accounts, ha1

NONCE_LIFETIME_S = 300


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass(frozen=True)
class AuthResult:
    account: Account | None
    stale: bool = False


class DigestAuthenticator:
    def __init__(self, accounts: Accounts, secret: bytes | None = None, lifetime_s: int = NONCE_LIFETIME_S):
        self.accounts = accounts
        self._secret = secret or secrets.token_bytes(32)
        self._lifetime_s = lifetime_s

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        stamp = str(int(time.time()))
        return base64.b64encode(f"{stamp}:{self._sign(stamp)}".encode()).decode()

    def _nonce_state(self, nonce: str) -> str:
        """'ok', 'stale' or 'bad'."""
        try:
            stamp, signature = base64.b64decode(nonce.encode(), validate=True).decode().split(":", 1)
        except (ValueError, UnicodeDecodeError):
            return "bad"
        if not hmac.compare_digest(signature, self._sign(stamp)):
            return "bad"
        return "ok" if time.time() - int(stamp) <= self._lifetime_s else "stale"

    def challenge(self, stale: bool = False) -> str:
        return (f'Digest realm="{self.accounts.realm}", qop="auth", algorithm=MD5, '
                f'nonce="{self.new_nonce()}", opaque="{self._sign("opaque")}"' + (", stale=true" if stale else ""))

    def authenticate(self, method: str, header: str | None, https: bool, uri: str | None = None) -> AuthResult:
        """Check an Authorization header; ``uri`` (path and query) must match the digest's, if given."""
        if not header:
            return AuthResult(None)
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic":
            return AuthResult(self._basic(rest) if https else None)
        if scheme.lower() != "digest":
            return AuthResult(None)
        params = parse_keqv_list(parse_http_list(rest))
        account = self.accounts.get(params.get("username", ""))
        if account is None or params.get("realm") != self.accounts.realm:
            return AuthResult(None)
        if uri is not None and params.get("uri") != uri:
            return AuthResult(None)  # a response computed for another resource
        state = self._nonce_state(params.get("nonce", ""))
        if state == "bad":
            return AuthResult(None)
        ha2 = _md5(f"{method}:{params.get('uri', '')}")
        if params.get("qop") == "auth":
            expected = _md5(f"{account.ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}"
                            f":auth:{ha2}")
        else:  # RFC 2069 compatibility, no qop
            expected = _md5(f"{account.ha1}:{params['nonce']}:{ha2}")
        if not hmac.compare_digest(expected, params.get("response", "")):
            return AuthResult(None)
        if state == "stale":
            return AuthResult(None, stale=True)
        return AuthResult(account)

    def _basic(self, encoded: str) -> Account | None:
        try:
            username, _, password = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        account = self.accounts.get(username)
        if account is None or not hmac.compare_digest(account.ha1, ha1(username, self.accounts.realm, password)):
            return None
        return account
