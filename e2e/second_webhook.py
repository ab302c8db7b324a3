"""A second validating webhook for the truthful-history tests, run beside the gate as its own process.

It stands for every other admission webhook of a real cluster (a policy engine, a quota check): the
API server calls it with ours, and its refusal means a change our gate admitted never lands.

* ``--deny-replicas N``: refuse any workload (or Scale) update to N replicas;
* ``--hold-replicas N`` ``--hold-seconds S``: answer the first review of an update to N replicas
  per object only after S seconds (allowing it), so a test can write the object meanwhile and
  make the API server retry the update on conflict, re-running admission under a new uid.

Every review it saw is appended to ``--log`` as one JSON line (uid, name, replicas, answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build(*, deny: int | None, hold: int | None, hold_seconds: float, log: pathlib.Path) -> Starlette:
    held: set[str] = set()

    async def validate(request: Request) -> JSONResponse:
        review = await request.json()
        req = review["request"]
        replicas = ((req.get("object") or {}).get("spec") or {}).get("replicas")
        key = f"{req.get('namespace')}/{req.get('name')}"
        allowed, message = True, ""
        if deny is not None and replicas == deny:
            allowed, message = False, f"second-webhook: {deny} replicas are not allowed here"
        elif hold is not None and replicas == hold and key not in held:
            held.add(key)
            await asyncio.sleep(hold_seconds)
        with log.open("a") as out:
            out.write(json.dumps({"uid": req["uid"], "name": req.get("name"), "replicas": replicas,
                                  "subResource": req.get("subResource"), "allowed": allowed}) + "\n")
        response = {"uid": req["uid"], "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 403, "message": message}
        return JSONResponse({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/validate", validate, methods=["POST"]), Route("/ready", ready)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--deny-replicas", type=int)
    parser.add_argument("--hold-replicas", type=int)
    parser.add_argument("--hold-seconds", type=float, default=1.5)
    args = parser.parse_args()
    app = build(deny=args.deny_replicas, hold=args.hold_replicas, hold_seconds=args.hold_seconds,
                log=pathlib.Path(args.log))
    uvicorn.run(app, host="127.0.0.1", port=args.port, ssl_certfile=args.cert, ssl_keyfile=args.key,
                log_level="warning")


if __name__ == "__main__":
    main()
