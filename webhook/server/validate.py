"""``POST /validate``: AdmissionReview v1 in, AdmissionReview v1 out.

Bad input is the client's problem and gets a 400 naming it. Trouble on our side never becomes
a 500: the request is answered fail-open (allowed, with a warning) or, with ``failClosed``,
refused — either way the API server gets a well-formed review.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from webhook import metrics
from webhook.admission import responses
from webhook.admission.review import BadReview, parse_review
from webhook.engine.gate import Gate, GateResult
from webhook.server.bodies import BodyTooLarge, read_limited

logger = logging.getLogger("safety_gate.decisions")


def bad_request(error: BadReview) -> JSONResponse:
    metrics.BAD_REQUESTS.inc()
    return JSONResponse(error.to_json(), status_code=400)


async def validate(request: Request) -> JSONResponse:
    state = request.app.state
    gate: Gate = state.gate
    try:
        review = parse_review(await read_limited(request, limit=state.settings.max_body_bytes))
    except BodyTooLarge as error:
        return bad_request(BadReview(str(error)))
    except BadReview as error:
        return bad_request(error)
    limit = state.settings.max_in_flight
    in_flight = state.in_flight
    if limit and in_flight >= limit:
        return JSONResponse(_shed(review.request.uid, fail_closed=state.settings.fail_closed))
    state.in_flight = in_flight + 1
    try:
        result = await gate.review(review.request)
    except Exception as exc:  # the stores, the network: never the caller's fault, never a 500
        return JSONResponse(_degraded(review.request.uid, exc, fail_closed=state.settings.fail_closed))
    finally:
        state.in_flight -= 1
    return JSONResponse(result.response)


def _shed(uid: str, *, fail_closed: bool) -> dict:
    """More reviews in flight than ``max_in_flight``: answer at once instead of queueing.

    A queue only grows once the gate is behind: every waiting request ages towards the API
    server's 3s timeout, the stores' timeouts fire, and the gate stops answering anything in
    time. Shedding keeps the answers it does give fast. A shed request is not checked and not
    recorded (recording is the work there is no room for); it is counted and logged.
    """
    metrics.SHED_REQUESTS.inc()
    logger.warning("overloaded: %s answered unchecked (%s)", uid, _mode(fail_closed),
                   extra={"uid": uid, "decision": _mode(fail_closed)})
    return _unchecked(uid, fail_closed=fail_closed,
                      refusal="safety-gate: overloaded; failClosed is set, refusing",
                      warning="safety-gate: overloaded, allowed unchecked (fail-open)")


def _degraded(uid: str, exc: Exception, *, fail_closed: bool) -> dict:
    mode = _mode(fail_closed)
    metrics.DEGRADED_DECISIONS.labels(mode=mode, reason="gate-error").inc()
    logger.error("cannot decide %s (%s): %s", uid, mode, exc, extra={"uid": uid, "decision": mode}, exc_info=exc)
    return _unchecked(uid, fail_closed=fail_closed,
                      refusal=f"safety-gate: cannot check history ({type(exc).__name__}); failClosed is set, refusing",
                      warning=f"safety-gate: history unavailable, allowed unchecked ({mode})")


def _mode(fail_closed: bool) -> str:
    return "fail-closed" if fail_closed else "fail-open"


def _unchecked(uid: str, *, fail_closed: bool, refusal: str, warning: str) -> dict:
    """A request answered without a decision: refused 503 with ``failClosed``, else allowed with a warning."""
    metrics.REQUESTS.labels(decision=_mode(fail_closed), pattern="", dry_run="false").inc()
    if fail_closed:
        return responses.denied(uid, code=503, message=refusal)
    return responses.allowed(uid, warnings=[warning])


def observe(result: GateResult) -> None:
    """Metrics and the one log line per decision."""
    decision = result.decision
    if decision is None:
        return
    event = decision.event
    outcome = decision.outcome.value
    dry_run = "true" if result.dry_run else "false"
    metrics.REQUESTS.labels(decision=outcome, pattern=decision.pattern, dry_run=dry_run).inc()
    metrics.LATENCY.labels(decision=outcome).observe(result.latency_ms / 1000)
    if result.degraded:
        metrics.DEGRADED_DECISIONS.labels(mode=result.degraded_mode, reason=result.degraded).inc()
    target = event.target
    if not result.dry_run:
        if decision.record and target is not None:
            metrics.ACTION_HISTORY.labels(namespace=target.namespace, resource_kind=target.kind,
                                          action_type=event.action_type).inc()
        for finding in decision.findings[:1]:
            metrics.DETECTIONS.labels(pattern_type=finding.pattern.value,
                                      namespace=target.namespace if target else "",
                                      severity=finding.severity.value).inc()
    logger.info(
        "%s %s %s by %s: %s", outcome, event.action_type, target.key if target else "-", event.actor,
        decision.message or "", extra={
            "uid": event.uid, "target": target.key if target else None, "actor": event.actor,
            "action": event.action_type, "decision": outcome, "pattern": decision.pattern or None,
            "dry_run": result.dry_run, "latency_ms": round(result.latency_ms, 3), "degraded": result.degraded,
        },
    )
