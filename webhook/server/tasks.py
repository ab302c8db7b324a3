"""Kept for the imports of the first wave: the guarded task lives in :mod:`webhook.services`."""

from webhook.services import DEFAULT_STOP_TIMEOUT, GuardedTask

__all__ = ["DEFAULT_STOP_TIMEOUT", "GuardedTask"]
