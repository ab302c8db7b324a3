"""AdmissionReview in, AdmissionReview out: parsing, proposals and response shapes."""

from webhook.admission.extract import Proposal, extract
from webhook.admission.responses import allowed, denied
from webhook.admission.review import AdmissionRequest, AdmissionReview, BadReview, parse_review

__all__ = ["AdmissionRequest", "AdmissionReview", "BadReview", "Proposal", "allowed", "denied",
           "extract", "parse_review"]
