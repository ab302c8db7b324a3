"""``safety-gate mcp`` refuses arguments it cannot answer with a tool error naming the argument:
a look-back of 999999d or a replica count beyond an int32 used to surface as a generic error (an
overflow deep in the tool), which tells an agent nothing about what to fix."""

from __future__ import annotations

from typing import Any

from mcp import Client

from tests.integration.test_mcp import call, run, server

TARGET = {"namespace": "shop", "resource_name": "cart"}


def test_bad_arguments_are_tool_errors_that_name_the_argument(gate, fresh_database, fresh_redis_url, tmp_path):
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("check_action_history", {**TARGET, "resource_kind": "Deployment", "time_range": "999999d"},
         "time_range: '999999d' is out of range"),
        ("check_action_history", {**TARGET, "resource_kind": "Deployment", "time_range": "9" * 30 + "d"},
         "time_range"),
        ("check_action_history", {**TARGET, "resource_kind": "Deployment", "time_range": "0s"}, "time_range"),
        ("check_action_history", {"namespace": "sh\x00op", "resource_kind": "Deployment", "resource_name": "cart"},
         "namespace: must not contain control characters"),
        ("check_action_history", {"namespace": "shop", "resource_kind": "Deployment", "resource_name": "c" * 300},
         "resource_name: is longer than 253 characters"),
        ("check_action_history", {"namespace": "", "resource_kind": "Deployment", "resource_name": "cart"},
         "namespace: is required"),
        ("get_action_effectiveness", {"action_type": "scale_deployment", "time_period": "4000d"},
         "time_period: '4000d' is out of range"),
        ("get_action_effectiveness", {"action_type": "x\x00", "time_period": "7d"}, "action_type"),
        ("detect_oscillation_patterns", {**TARGET, "pattern_types": ["scale-oscillation"] * 40}, "pattern_types"),
        ("validate_action_safety", {**TARGET, "proposed_action": "scale_deployment",
                                    "current_state": {"replicas": 3}, "target_replicas": 10**30},
         "target_replicas"),
        ("validate_action_safety", {**TARGET, "proposed_action": "scale_deployment",
                                    "current_state": {"replicas": 2**31}, "target_replicas": 3},
         "current_state.replicas: must be a replica count from 0 to 2147483647"),
        ("validate_action_safety", {**TARGET, "proposed_action": "scale_deployment",
                                    "current_state": {"replicas": "many", "target_replicas": 3}},
         "current_state.replicas"),
        ("validate_action_safety", {**TARGET, "proposed_action": "scale_deployment",
                                    "current_state": {"replicas": 2.5}, "target_replicas": 3},
         "current_state.replicas"),
        ("validate_action_safety", {**TARGET, "proposed_action": "restart_deployment",
                                    "current_state": {"alert_name": 5}}, "current_state.alert_name"),
        ("validate_action_safety", {**TARGET, "proposed_action": "scale_deployment", "actor": "a\nb"}, "actor"),
        ("validate_action_safety", {**TARGET, "proposed_action": "x" * 200}, "proposed_action"),
    ]

    async def session() -> None:
        async with Client(server(fresh_database, fresh_redis_url, tmp_path / "mcp"), read_timeout_seconds=60) as client:
            for tool, arguments, words in cases:
                result = await client.call_tool(tool, arguments)
                assert result.is_error, (tool, arguments)
                text = result.content[0].text
                assert words in text, (tool, arguments, text)
            # The limits themselves are answered.
            at_limit = await call(client, "check_action_history", **TARGET, resource_kind="Deployment",
                                  time_range="3650d")
            assert at_limit["total_actions"] == 0
            verdict = await call(client, "validate_action_safety", **TARGET, proposed_action="scale_deployment",
                                 current_state={"replicas": 3.0}, target_replicas=2**31 - 1)
            assert verdict["allowed"] is True and verdict["request_kind"] == "scale-subresource"

    run(session())
