"""The built-in policy (DESIGN §4). It is written as OscillationPattern documents so that
``safety-gate`` can print it as a starting point for a policy file."""

from __future__ import annotations

from typing import Any

from webhook.policy.model import OscillationPattern
from webhook.policy.resolved import PatternPolicy, PolicySource

DEFAULT_DOCUMENTS: list[dict[str, Any]] = [
    {
        "metadata": {"name": "default-scale-oscillation"},
        "spec": {
            "patternDefinition": {
                "patternType": "scale-oscillation",
                "description": "Replicas moved up and down repeatedly",
                "detectionCriteria": {
                    "minOccurrences": 3,
                    "timeWindow": "2h",
                    "thresholds": {
                        "directionChanges": 2,
                        "highReversals": 3,
                        "criticalReversals": 4,
                        "criticalWindowMinutes": 60,
                    },
                },
            },
            "preventionStrategy": {
                "strategy": "cooling-period",
                "parameters": {"cooldownPeriod": "30m", "escalateAfter": "3", "escalateWindow": "24h"},
            },
        },
    },
    {
        "metadata": {"name": "default-resource-thrashing"},
        "spec": {
            "patternDefinition": {
                "patternType": "resource-thrashing",
                "description": "A container's cpu or memory moved up and down, or scale and resource changes alternate",
                "detectionCriteria": {
                    "minOccurrences": 2,
                    "timeWindow": "90m",
                    "thresholds": {"directionChanges": 2, "alternations": 3},
                },
            },
            "preventionStrategy": {"strategy": "alternative-action"},
        },
    },
    {
        "metadata": {"name": "default-ineffective-loop"},
        "spec": {
            "patternDefinition": {
                "patternType": "ineffective-loop",
                "description": "The same action keeps being repeated without effect",
                "detectionCriteria": {
                    "minOccurrences": 4,
                    "timeWindow": "3h",
                    "thresholds": {"effectivenessThreshold": 0.3},
                },
            },
            "preventionStrategy": {"strategy": "escalate-human", "parameters": {"approvalValidity": "1h"}},
        },
    },
    {
        "metadata": {"name": "default-cascading-failure"},
        "spec": {
            "patternDefinition": {
                "patternType": "cascading-failure",
                "description": "One actor touching many workloads at once",
                "detectionCriteria": {
                    "minOccurrences": 5,
                    "timeWindow": "15m",
                    "thresholds": {"namespaceWorkloads": 5, "clusterWorkloads": 20},
                },
            },
            "preventionStrategy": {"strategy": "block-action", "parameters": {"blockDuration": "60m"}},
        },
    },
    {
        "metadata": {"name": "default-controller-fight"},
        "spec": {
            "patternDefinition": {
                "patternType": "controller-fight",
                "description": "An actor keeps moving replicas another controller moved back",
                "detectionCriteria": {
                    "minOccurrences": 2,
                    "timeWindow": "60m",
                    "thresholds": {"revertWindowMinutes": 10},
                },
            },
            "preventionStrategy": {"strategy": "block-action", "parameters": {"blockDuration": "60m"}},
        },
    },
    {
        "metadata": {"name": "default-restart-storm"},
        "spec": {
            "patternDefinition": {
                "patternType": "restart-storm",
                "description": "One workload's pods keep being restarted without effect",
                "detectionCriteria": {
                    "minOccurrences": 4,
                    "timeWindow": "1h",
                    "thresholds": {"effectivenessThreshold": 0.3},
                },
            },
            "preventionStrategy": {"strategy": "escalate-human", "parameters": {"approvalValidity": "1h"}},
        },
    },
    {
        "metadata": {"name": "default-schedulability-oscillation"},
        "spec": {
            "patternDefinition": {
                "patternType": "schedulability-oscillation",
                "description": "A node cordoned and uncordoned back and forth",
                "detectionCriteria": {
                    "minOccurrences": 3,
                    "timeWindow": "2h",
                    "thresholds": {"directionChanges": 2, "highReversals": 3, "criticalReversals": 4},
                },
            },
            "preventionStrategy": {
                "strategy": "cooling-period",
                "parameters": {"cooldownPeriod": "30m", "escalateAfter": "3", "escalateWindow": "24h"},
            },
        },
    },
]


def default_policies() -> list[PatternPolicy]:
    return [
        PatternPolicy.from_document(OscillationPattern.model_validate(doc), source=PolicySource.DEFAULT)
        for doc in DEFAULT_DOCUMENTS
    ]
