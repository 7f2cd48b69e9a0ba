"""What the query-API tests ask with: a client holding a key, a 200's JSON, and every item of a
paginated list (following ``next_page_token``)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from services.bootstrap import EmbeddedStack


def as_(stack: EmbeddedStack, key: str) -> TestClient:
    return TestClient(stack.app, headers={"Authorization": f"Bearer {key}"})


def ok(response) -> Any:
    assert response.status_code == 200, (response.request.url, response.text)
    return response.json()


def every(client: TestClient, path: str, params: dict[str, Any], page_size: int = 1000) -> list[dict[str, Any]]:
    items, token = [], None
    while True:
        body = ok(client.get(path, params={**params, "page_size": page_size,
                                           **({"page_token": token} if token else {})}))
        items += body["items"]
        token = body["next_page_token"]
        if token is None:
            return items
