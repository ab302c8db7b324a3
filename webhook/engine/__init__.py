"""The gate engine: one admission request through extraction, history, detection and decision."""

from webhook.engine.gate import Gate, GateResult

__all__ = ["Gate", "GateResult"]
