"""The intake benchmark's upper bound: ``python -m bench.empty_server``.

The same FastAPI app factory (``services.web.create_app``: the same middleware, problem handlers,
``/health`` and ``/metrics``) under the same ``uvicorn.run`` call as ``python -m services.intake``
(one worker, HOST/PORT from the environment), with ``POST /submission`` reading the multipart form
and its ``xml_submission_file`` part like the intake does, then answering an empty 201. No
parsing, validation, ledger or Kafka: what the framework and server cost on their own.
``GET /forms/visit_log.xml`` serves the built form so the load generator can fill it.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import APIRouter, Request, Response

from services.config import Settings
from services.web import create_app


def empty_app(settings: Settings):  # noqa: ANN201 - a FastAPI app
    router = APIRouter()
    xform = (settings.forms_dir / "visit_log.xml").read_bytes()

    @router.get("/forms/visit_log.xml")
    def form_xml() -> Response:
        return Response(xform, media_type="text/xml; charset=utf-8", headers={"X-OpenRosa-Version": "1.0"})

    @router.post("/submission")
    async def submission(request: Request) -> Response:
        form = await request.form(max_part_size=settings.max_submission_bytes)
        part = form.get("xml_submission_file")
        if part is not None and not isinstance(part, str):
            await part.read()
        return Response(status_code=201, headers={"X-OpenRosa-Version": "1.0"})

    return create_app("bench: empty 201", [router])


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m bench.empty_server", description=__doc__).parse_args(argv)
    settings = Settings.from_env()
    uvicorn.run(empty_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                log_config=None)


if __name__ == "__main__":
    main()
