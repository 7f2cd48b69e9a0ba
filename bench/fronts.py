"""Reverse proxies the intake benchmark can put in front of its processes (``bench/intake.py``'s
``Front``): ``BENCH_INTAKE_FRONT=bench.fronts:caddy``.

``caddy`` runs the repository's own ``deploy/caddy/Caddyfile`` (the one compose and the tests
run, through ``tests/caddy.py``) with the processes as its intake upstreams, TLS from Caddy's
local CA, and yields its HTTPS address. The load process trusts that CA through
``SSL_CERT_FILE`` (read by OpenSSL's default trust store and by httpx), set while the proxy runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

from tests.caddy import Caddy


@contextlib.contextmanager
def caddy(upstreams: list[str]) -> Iterator[list[str]]:
    addresses = [urlsplit(url).netloc for url in upstreams]
    with Caddy(intake=addresses, query=addresses) as proxy:
        before = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(proxy.root_cert)
        try:
            yield [proxy.base_url]
        finally:
            if before is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = before
