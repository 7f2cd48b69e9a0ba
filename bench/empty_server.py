"""The intake benchmark's upper bound: ``python -m bench.empty_server``.

The same FastAPI app factory (``services.web.create_app``: the same middleware, problem handlers,
``/health`` and ``/metrics``) served the same way as ``python -m services.intake``
(``services.web.serve``: one worker, HOST/PORT from the environment), with ``POST /submission``
reading the multipart body with the intake's own reader (``services.intake.upload``), then
answering an empty 201. No
parsing, validation, ledger or Kafka: what the framework and server cost on their own.
``GET /forms/visit_log.xml`` serves the built form so the load generator can fill it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request, Response

from services.config import Settings
from services.intake.blobs import FileBlobStore
from services.intake.upload import Limits, read_upload
from services.web import create_app, serve


def empty_app(settings: Settings):  # noqa: ANN201 - a FastAPI app
    router = APIRouter()
    xform = (settings.forms_dir / "visit_log.xml").read_bytes()
    limits = Limits(settings.max_submission_bytes, settings.max_attachment_bytes)
    blobs = FileBlobStore(Path(tempfile.mkdtemp(prefix="empty-server-")))

    @router.get("/forms/visit_log.xml")
    def form_xml() -> Response:
        return Response(xform, media_type="text/xml; charset=utf-8", headers={"X-OpenRosa-Version": "1.0"})

    @router.post("/submission")
    async def submission(request: Request) -> Response:
        upload = await read_upload(request.stream(), request.headers.get("content-type", ""), limits, blobs)
        upload.discard()
        return Response(status_code=201, headers={"X-OpenRosa-Version": "1.0"})

    return create_app("bench: empty 201", [router])


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m bench.empty_server", description=__doc__).parse_args(argv)
    settings = Settings.from_env()
    serve(empty_app(settings), settings, settings.port, access_log=False)  # as python -m services.intake


if __name__ == "__main__":
    main()
