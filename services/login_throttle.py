"""A brake on guessing passwords and API keys: back-off per account and per client address.

Each wrong credential counts against the client's address and, when it names a known account,
against that account. Once a count reaches its threshold the key is locked: for
``AUTH_LOCKOUT_S`` seconds, doubling with every further failure, at most
``MAX_LOCKOUT_S``. While either key of a request is locked the credentials are not even
checked (a guess then teaches nothing) and the client is told when to try again. A success
clears the account's count; an address's count fades once it has failed nothing for
``FORGET_AFTER_S``. Thresholds differ: an account is one person's (a few typos), an address
may be a mobile carrier's NAT shared by many phones.

The state is in this process's memory (one intake or query process); replicas each keep their
own, which multiplies what a guesser gets by the number of replicas, not more. Bounded: at most
``MAX_KEYS`` keys are tracked, the stalest forgotten first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from services import metrics

log = logging.getLogger(__name__)

MAX_LOCKOUT_S = 900.0
FORGET_AFTER_S = 3600.0
MAX_KEYS = 100_000


@dataclass
class _Failures:
    count: int = 0
    last_at: float = 0.0
    locked_until: float = 0.0


@dataclass(frozen=True)
class ThrottlePolicy:
    per_account: int = 5
    per_address: int = 20
    lockout_s: float = 30.0


class LoginThrottle:
    def __init__(self, policy: ThrottlePolicy = ThrottlePolicy(), clock: Callable[[], float] = time.monotonic):
        self._policy, self._clock = policy, clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()  # least recently failed first
        self._lock = threading.Lock()

    def retry_after(self, address: str, account: str | None = None) -> int:
        """Seconds until this address (and account, if named) may try again; 0: now."""
        now = self._clock()
        with self._lock:
            waits = [f.locked_until - now for key in _keys(address, account)
                     if (f := self._keys.get(key)) is not None]
        longest = max(waits, default=0.0)
        return int(longest) + 1 if longest > 0 else 0

    def failed(self, service: str, method: str, address: str, account: str | None = None) -> None:
        """A wrong credential from ``address`` (for ``account``, when it names a known one)."""
        now = self._clock()
        metrics.AUTH_FAILURES.labels(service=service, method=method).inc()
        locked: list[tuple[str, float]] = []
        with self._lock:
            for key in _keys(address, account):
                failures = self._keys.pop(key, None) or _Failures()
                if now - failures.last_at > FORGET_AFTER_S and failures.locked_until <= now:
                    failures = _Failures()
                failures.count += 1
                failures.last_at = now
                threshold = self._policy.per_account if key.startswith("account:") else self._policy.per_address
                if failures.count >= threshold:
                    doublings = min(failures.count - threshold, 20)  # past the cap anyway; no float overflow
                    seconds = min(self._policy.lockout_s * 2 ** doublings, MAX_LOCKOUT_S)
                    failures.locked_until = now + seconds
                    locked.append((key, seconds))
                self._keys[key] = failures
            while len(self._keys) > MAX_KEYS:
                self._keys.popitem(last=False)
        # Who and from where, never what was sent: no password, key or Authorization header here.
        log.warning("authentication failed", extra={"service": service, "method": method, "client": address,
                                                    "account": account or ""})
        for key, seconds in locked:
            scope = key.partition(":")[0]
            metrics.AUTH_LOCKOUTS.labels(service=service, scope=scope).inc()
            log.warning("authentication locked", extra={"service": service, "locked": key,
                                                        "seconds": round(seconds, 1)})

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._keys.pop(f"account:{account}", None)


def _keys(address: str, account: str | None) -> list[str]:
    return [f"address:{address}"] + ([f"account:{account}"] if account else [])
