"""Pure oscillation detectors: a ``Situation`` and a ``PatternPolicy`` in, a ``Finding`` (or None) out."""

from webhook.detection.situation import Finding, Severity, Situation

__all__ = ["Finding", "Severity", "Situation"]
