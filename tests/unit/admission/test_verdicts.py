"""Typed verdicts become AdmissionReviews only at the edge, with the request's uid."""

from __future__ import annotations

from webhook.admission.responses import Verdict, review


def test_allow_warn_and_deny_on_the_wire():
    assert review("u1", Verdict.allow()) == {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                             "response": {"uid": "u1", "allowed": True}}
    warned = review("u2", Verdict.warn("safety-gate: one more and it is refused"))["response"]
    assert warned == {"uid": "u2", "allowed": True, "warnings": ["safety-gate: one more and it is refused"]}
    denied = review("u3", Verdict.deny(code=429, message="cooling", retry_after=3))["response"]
    assert denied["allowed"] is False
    assert denied["status"] == {"status": "Failure", "code": 429, "reason": "TooManyRequests", "message": "cooling",
                                "details": {"retryAfterSeconds": 3}}
    assert "warnings" not in denied
    assert review("u4", Verdict.deny(code=403, message="no"))["response"]["status"]["reason"] == "Forbidden"
