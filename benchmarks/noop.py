"""A webhook that allows everything, on the gate's own server stack: the benchmarks' baseline.

Same uvicorn configuration and reloading TLS context as ``safety-gate serve``, same body limit,
same AdmissionReview parsing and the same allowed-response helper; only the decision, the
stores and the logging are left out. What the gate adds over this is what the gate costs.

    python -m benchmarks.noop --port 9443 --tls-dir DIR
"""

from __future__ import annotations

import argparse
import pathlib

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from webhook.admission import responses
from webhook.admission.review import BadReview, parse_review
from webhook.cli.serve import KEEP_ALIVE_SECONDS, ReloadingTLSConfig, run_event_loop
from webhook.server.bodies import BodyTooLarge, read_limited
from webhook.settings import Settings
from webhook.tls.reloading import ReloadingServerContext
from webhook.tls.selfsigned import ensure_serving_pair


async def allow(request: Request) -> JSONResponse:
    try:
        review = parse_review(await read_limited(request, limit=request.app.state.max_body_bytes))
    except (BodyTooLarge, BadReview) as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse(responses.allowed(review.request.uid))


def create_app() -> Starlette:
    app = Starlette(routes=[Route("/validate", allow, methods=["POST"])])
    app.state.max_body_bytes = Settings().max_body_bytes
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-dir", type=pathlib.Path, required=True, help="where the gate keeps its certificates")
    args = parser.parse_args()
    _, cert, key = ensure_serving_pair(args.tls_dir)
    tls = ReloadingServerContext(cert_file=cert, key_file=key)
    config = ReloadingTLSConfig(create_app(), tls=tls, host="127.0.0.1", port=args.port, ssl_certfile=str(cert),
                                ssl_keyfile=str(key), log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5, timeout_keep_alive=KEEP_ALIVE_SECONDS)
    run_event_loop(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
