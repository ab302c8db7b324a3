"""Policies: what counts as oscillation and what to do about it, and who is subject to it."""

from webhook.policy.actors import ActorRules
from webhook.policy.defaults import default_policies
from webhook.policy.loader import PolicyError, load_policy_file, load_policy_text
from webhook.policy.model import Enforcement, OscillationPattern, PatternType, Strategy
from webhook.policy.resolved import PatternPolicy, PolicySet

__all__ = [
    "ActorRules", "Enforcement", "OscillationPattern", "PatternPolicy", "PatternType",
    "PolicyError", "PolicySet", "Strategy", "default_policies", "load_policy_file", "load_policy_text",
]
