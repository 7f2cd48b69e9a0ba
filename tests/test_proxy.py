"""Caddy in front (deploy/caddy/Caddyfile, as compose runs it), tested with a real Caddy and real
servers behind it: TLS, the routes, which forwarded headers the services believe, the body limit,
and several intake replicas (spread, and failover when one dies)."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.bootstrap import EmbeddedStack, embedded_stack
from services.bus.admin import ensure_topics
from services.clock import today_local
from services.config import Settings
from services.domain.reference import Library, default_reference
from services.intake.accounts import add_account
from services.tools.submissions import fill_instance, multipart
from tests.caddy import Caddy
from tests.conftest import OPENROSA, visit_answers
from tests.intake_processes import IntakeProcess, start_intakes
from tests.serving import serving

StartCaddy = Callable[..., Caddy]
DAY = today_local() - timedelta(days=2)
USER, PASSWORD = "doi-hg", "mat-khau-hg"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
# Nothing listens on the discard port: a route to it is one this test does not use.
UNUSED = ["127.0.0.1:9"]


def _ha_giang() -> Library:
    return next(lib for lib in sorted(default_reference().libraries.values(), key=lambda lib: lib.library_id)
                if lib.area("legacy").province_code == "02")


def _report(forms_dir: Path, instance_id: str, total: int = 12) -> bytes:
    xform = (forms_dir / "visit_log.xml").read_bytes()
    return fill_instance(xform, visit_answers(_ha_giang(), DAY, total=total), instance_id)


def _address(url: str) -> str:
    return url.removeprefix("http://")


@pytest.fixture
def behind_proxy(settings: Settings, tmp_path: Path) -> Iterator[tuple[EmbeddedStack, Settings]]:
    """The embedded stack with a team account, believing forwarded headers from 127.0.0.1 only (where
    Caddy connects from), as compose believes them from Caddy's address only."""
    accounts = tmp_path / "accounts.json"
    add_account(accounts, USER, PASSWORD, ["legacy:02"])
    configured = settings.model_copy(update={"accounts_file": str(accounts), "trusted_proxies": ("127.0.0.1",),
                                             "max_submission_bytes": 64 * 1024})
    stack = embedded_stack(configured)
    try:
        yield stack, configured
    finally:
        stack.close()


# --- (a) the stack behind Caddy over HTTPS ----------------------------------------------------------------------

def test_intake_and_query_answer_through_caddy_over_https(behind_proxy: tuple[EmbeddedStack, Settings],
                                                         caddy_proxy: StartCaddy, forms_dir: Path):
    stack, configured = behind_proxy
    with serving(stack.app, configured) as url:
        caddy = caddy_proxy(intake=[_address(url)], query=[_address(url)])
        with caddy.client(headers=OPENROSA, auth=httpx.DigestAuth(USER, PASSWORD)) as phone:
            head = phone.head("/submission")
            assert head.status_code == 204, head.text
            assert head.headers["X-OpenRosa-Version"] == "1.0"
            assert head.headers["X-OpenRosa-Accept-Content-Length"] == str(64 * 1024)

            sent = phone.post("/submission", files=multipart(_report(forms_dir, "uuid:via-caddy")))
            assert sent.status_code == 201, sent.text
            assert "<OpenRosaResponse" in sent.text

            # The intake builds its links from the Host Caddy passes on and the scheme it was told.
            form_list = phone.get("/formList")
            assert form_list.status_code == 200
            assert f"<downloadUrl>{caddy.base_url}/forms/visit_log.xml</downloadUrl>" in form_list.text

        assert stack.ledger.lookup("uuid:via-caddy") is not None
        with caddy.client(headers={"X-API-Key": stack.demo_api_key or ""}) as reader:
            me = reader.get("/v1/me")
            assert me.status_code == 200, me.text
            assert reader.get("/openapi.json").status_code == 200
            assert reader.get("/dashboard").status_code == 200
            # /metrics is for Prometheus on the private network: Caddy answers it itself.
            metrics = reader.get("/metrics")
            assert metrics.status_code == 404 and "intake_submissions" not in metrics.text

        # Plain HTTP only redirects (308 keeps the method and body); nothing is served over it. The
        # redirect names no port: Caddy takes HTTPS_PORT for its own side of a port mapping (443 outside).
        plain = httpx.get(f"{caddy.http_url}/formList", headers=OPENROSA)
        assert plain.status_code == 308
        assert plain.headers["Location"] == "https://localhost/formList"


# --- (b) forwarded headers are believed from the proxy only -----------------------------------------------------

def test_basic_auth_is_accepted_through_caddy_and_refused_directly_with_a_forged_scheme(
        behind_proxy: tuple[EmbeddedStack, Settings], caddy_proxy: StartCaddy):
    stack, configured = behind_proxy
    with serving(stack.app, configured) as url:
        caddy = caddy_proxy(intake=[_address(url)], query=UNUSED)
        with caddy.client(headers=OPENROSA) as phone:
            # The client's own X-Forwarded-Proto says "http": Caddy replaces it with what it knows.
            through = phone.get("/formList", headers={"Authorization": BASIC, "X-Forwarded-Proto": "http"})
        assert through.status_code == 200, through.text

        # Another host on the network (127.0.0.3, not the trusted 127.0.0.1) claims HTTPS itself.
        elsewhere = httpx.HTTPTransport(local_address="127.0.0.3")
        with httpx.Client(transport=elsewhere, headers=OPENROSA) as forger:
            direct = forger.get(f"{url}/formList", headers={"Authorization": BASIC, "X-Forwarded-Proto": "https",
                                                             "X-Forwarded-For": "127.0.0.1"})
        assert direct.status_code == 401, direct.text
        assert direct.headers["WWW-Authenticate"].startswith("Digest ")


def _echo_headers() -> Callable[..., object]:
    """An ASGI app answering with the request headers it got, and the client address it saw."""
    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        lines = [f"{k.decode()}: {v.decode()}" for k, v in scope["headers"]]
        body = "\n".join([f"client: {scope['client'][0]}", *lines]).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    return app


def test_caddy_replaces_a_clients_forwarded_headers(caddy_proxy: StartCaddy):
    with serving(_echo_headers()) as url:
        caddy = caddy_proxy(intake=[_address(url)], query=[_address(url)])
        with caddy.client() as client:
            seen = client.get("/v1/anything", headers={
                "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example",
                "Forwarded": "for=203.0.113.9;proto=https", "X-Real-IP": "203.0.113.9"}).text
    headers = dict(line.split(": ", 1) for line in seen.splitlines())
    assert headers["x-forwarded-for"] == "127.0.0.1"  # the address Caddy saw, and only it
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == f"localhost:{caddy.https_port}"
    assert headers["host"] == f"localhost:{caddy.https_port}"
    assert "forwarded" not in headers and "x-real-ip" not in headers
    assert "203.0.113.9" not in seen and "evil.example" not in seen


# --- (c) the body limit ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "who"), [(96 * 1024, "intake"), (2 * 1024 * 1024, "caddy")])
def test_a_body_over_the_limit_is_refused_and_nothing_is_stored(
        behind_proxy: tuple[EmbeddedStack, Settings], caddy_proxy: StartCaddy, forms_dir: Path, size: int,
        who: str):
    """Over MAX_SUBMISSION_BYTES (64 KiB here) the intake refuses as it reads; declared over Caddy's
    MAX_REQUEST_BODY (128 KiB here) Caddy refuses before a replica reads any of it. Both answer an
    OpenRosa 413 Collect can show, and neither takes the replica out of Caddy's rotation."""
    stack, configured = behind_proxy
    instance_id = f"uuid:too-big-{who}"
    files = {**multipart(_report(forms_dir, instance_id)),
             "photo.jpg": ("photo.jpg", b"\xff\xd8\xff\xe0" + os.urandom(size), "image/jpeg")}
    with serving(stack.app, configured) as url:
        caddy = caddy_proxy(intake=[_address(url)], query=UNUSED, env={"MAX_REQUEST_BODY": str(128 * 1024)})
        with caddy.client(headers=OPENROSA, auth=httpx.DigestAuth(USER, PASSWORD)) as phone:
            refused = phone.post("/submission", files=files)
            assert refused.status_code == 413, refused.text
            assert refused.headers["X-OpenRosa-Version"] == "1.0"
            assert "<OpenRosaResponse" in refused.text and "too large" in refused.text
            assert ("Submission too large." in refused.text) == (who == "caddy")
            assert stack.ledger.lookup(instance_id) is None
            assert [p for p in (configured.state_dir / "raw").rglob("*") if p.is_file()] == []

            after = phone.post("/submission", files=multipart(_report(forms_dir, f"{instance_id}-after")))
            assert after.status_code == 201, after.text


# --- (d) intake replicas behind Caddy: spread, and failover -----------------------------------------------------

@pytest.fixture
def two_intakes(tmp_path: Path, forms_dir: Path, kafka_bootstrap_servers: str) -> Iterator[list[IntakeProcess]]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap_servers, prefix)
    started = start_intakes(["a", "b"], tmp_path, forms_dir=forms_dir, bootstrap=kafka_bootstrap_servers,
                            prefix=prefix)
    try:
        yield started
    finally:
        for intake in started:
            intake.stop()


@pytest.mark.kafka
def test_submissions_are_spread_over_replicas_and_survive_one_dying(
        two_intakes: list[IntakeProcess], caddy_proxy: StartCaddy, forms_dir: Path):
    a, b = two_intakes
    caddy = caddy_proxy(intake=[a.address, b.address], query=UNUSED, env={"HEALTH_INTERVAL": "1s"})
    with caddy.client(headers=OPENROSA) as phone:
        for n in range(20):
            sent = phone.post("/submission", files=multipart(_report(forms_dir, f"uuid:spread-{n}")))
            assert sent.status_code == 201, sent.text
        spread = (a.accepted(), b.accepted())
        assert spread == (10, 10), spread  # round_robin

        b.kill()  # a replica dies: no goodbye
        # Requests without a body are retried on the other replica at once (the dial was refused).
        assert [phone.head("/submission").status_code for _ in range(6)] == [204] * 6
        # A POST is not (Caddy 2.6 cannot resend a body): the active check takes the dead replica out
        # within HEALTH_INTERVAL, then every submission goes to the live one.
        time.sleep(2.5)
        for n in range(10):
            sent = phone.post("/submission", files=multipart(_report(forms_dir, f"uuid:after-{n}")))
            assert sent.status_code == 201, (n, sent.text)
        assert a.accepted() == spread[0] + 10
