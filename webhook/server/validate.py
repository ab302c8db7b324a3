"""``POST /validate``: AdmissionReview v1 in, AdmissionReview v1 out.

Bad input is the client's problem and gets a 400 naming it. Trouble on our side never becomes
a 500: the request is answered fail-open (allowed, with a warning) or, with ``failClosed``,
refused — either way the API server gets a well-formed review. Overload (more reviews in flight
than the replica's or the actor's limit) is answered at once, by actor class: 429 to retry for
automation, admitted and recorded for people and observed actors (DESIGN §7).
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from webhook import metrics
from webhook.actions.model import ActorClass
from webhook.admission import responses
from webhook.admission.extract import extract
from webhook.admission.review import AdmissionRequest, BadReview, parse_review
from webhook.decision import overload
from webhook.decision.decide import prepare
from webhook.engine.gate import Gate, GateResult
from webhook.server.bodies import BodyTooLarge, read_limited
from webhook.server.overload import Overload, Slots
from webhook.store.effects import Effects
from webhook.store.errors import Gap

logger = logging.getLogger("safety_gate.decisions")

DEGRADED_OVERLOAD = "overload"  # the decisions table's ``degraded``: admitted without reading history


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
    admission = review.request
    slots: Slots = state.slots
    actor = admission.userInfo.username
    limit = slots.full(actor)
    if limit is not None:
        answer = await _overloaded(gate, admission, limit=limit)
        retry = answer["response"].get("status", {}).get("details", {}).get("retryAfterSeconds")
        return JSONResponse(answer, headers={"Retry-After": str(retry)} if retry else None)
    with slots.taken(actor):
        try:
            result = await gate.review(admission)
        except Exception as exc:  # noqa: BLE001 - the stores, the network: never the caller's fault, never a 500
            return JSONResponse(await _degraded(gate, admission, exc, fail_closed=state.settings.fail_closed))
    return JSONResponse(result.response)


async def _overloaded(gate: Gate, admission: AdmissionRequest, *, limit: Overload) -> dict:
    """A review beyond the replica's or the actor's in-flight limit, answered without waiting.

    Automation gets 429 with a retry hint: its change is decided when it comes back, never admitted
    unchecked. People and observed actors are admitted and recorded (the target's lock and one write,
    no history read: the cheap part of a decision), so overload never takes the cluster down and
    never loses an admitted action. Requests the gate does not judge are allowed, as on the normal path.
    """
    started = time.perf_counter()
    uid = admission.uid
    actor_class = gate.rules.classify(admission.userInfo.username, admission.userInfo.groups)
    now = gate.clock()
    try:
        proposal = extract(admission, now=now)
    except Exception:  # a bug in extraction must not turn overload into a bypass for automation
        logger.exception("overloaded: cannot extract %s", uid)
        proposal = None
        if actor_class is ActorClass.AUTOMATION:
            return _refuse(uid, actor_class=actor_class, limit=limit, dry_run=admission.dryRun)
    if proposal is None or (admission.namespace or "") in gate.excluded_namespaces:
        return responses.allowed(uid)
    event = prepare(proposal, rules=gate.rules, history=())
    if event.actor_class is ActorClass.AUTOMATION:
        return _refuse(uid, actor_class=event.actor_class, limit=limit, dry_run=proposal.dry_run)
    metrics.OVERLOADED_REQUESTS.labels(actor_class=event.actor_class.value, reason=limit.value).inc()
    target = event.target
    locks = [f"target:{target.key}"] if target is not None and not proposal.dry_run else []
    # The target's lock (never the actor's: that would queue every HPA record behind one another)
    # keeps the order of timestamps the order in which decisions on the target saw the history.
    decision = overload.admitted(event, limit=limit.value)
    try:
        async with gate.history.serialized(locks):
            now = gate.clock()
            decision = overload.admitted(event.replace(at=now), limit=limit.value)
            if not proposal.dry_run:
                effects = Effects.of(decision, now=now, latency_ms=(time.perf_counter() - started) * 1000,
                                     degraded=DEGRADED_OVERLOAD)
                await gate.history.remember(effects, now=now)
    except Exception as exc:  # admitted all the same: refusing an observed actor or a person is worse
        logger.error("overloaded: cannot record %s by %s: %s", uid, event.actor, exc,
                     extra={"uid": uid, "actor": event.actor}, exc_info=exc)
    if proposal.dry_run:
        decision = decision.without_effects()
    if gate.on_decision:
        # Counted as overloaded above, not as a degraded decision (that metric is about the stores).
        gate.on_decision(GateResult(response=decision.response(uid=uid), decision=decision, dry_run=proposal.dry_run,
                                    latency_ms=(time.perf_counter() - started) * 1000))
    return decision.response(uid=uid)


def _refuse(uid: str, *, actor_class: ActorClass, limit: Overload, dry_run: bool) -> dict:
    metrics.OVERLOADED_REQUESTS.labels(actor_class=actor_class.value, reason=limit.value).inc()
    metrics.REQUESTS.labels(decision="overloaded", pattern="", dry_run="true" if dry_run else "false").inc()
    logger.warning("overloaded (%s): %s refused with 429, to be retried", limit.value, uid,
                   extra={"uid": uid, "decision": "overloaded"})
    return overload.refusal(uid, limit=limit.value)


async def _degraded(gate: Gate, admission: AdmissionRequest, exc: Exception, *, fail_closed: bool) -> dict:
    """The gate failed without an answer. ``failClosed`` refuses automation only, as when the stores
    are down (``decide.unchecked``): observed actors are never refused (DESIGN §3) and people never
    blind. What is admitted is still recorded, if the stores take it, so the answer and the record
    agree."""
    uid = admission.uid
    if fail_closed and gate.rules.classify(admission.userInfo.username,
                                           admission.userInfo.groups) is not ActorClass.AUTOMATION:
        fail_closed = False
    mode = _mode(fail_closed)
    metrics.DEGRADED_DECISIONS.labels(mode=mode, reason=Gap.GATE_ERROR.value).inc()
    logger.error("cannot decide %s (%s): %s", uid, mode, exc, extra={"uid": uid, "decision": mode}, exc_info=exc)
    try:
        await gate.remember_unchecked(admission, fail_closed=fail_closed)
    except Exception as again:  # noqa: BLE001 - the answer stands; the log says what was not recorded
        logger.error("cannot record %s answered %s: %s", uid, mode, again, extra={"uid": uid}, exc_info=again)
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
