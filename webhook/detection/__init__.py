"""Pure oscillation detectors: a ``Situation`` and a ``PatternPolicy`` in, a ``Finding`` (or None) out."""

from webhook.detection.detect import DETECTORS, detect_all
from webhook.detection.situation import Finding, Severity, Situation

__all__ = ["DETECTORS", "Finding", "Severity", "Situation", "detect_all"]
