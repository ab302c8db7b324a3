"""``safety-gate mcp``: the four tools on the ``mcp`` SDK's ``MCPServer``, over stdio or streamable HTTP.

The runtime (stores, policies, gate) is started once, before the transport, and shared by every
session; tools close over it. A bad argument is reported to the agent as a tool error naming the
argument (``ToolError``), never as a crash.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

import webhook
from webhook.mcp import tools
from webhook.server.runtime import Runtime
from webhook.store.errors import StoreError

Transport = Literal["stdio", "streamable-http"]
TOOL_NAMES = ("check_action_history", "detect_oscillation_patterns", "get_action_effectiveness",
              "validate_action_safety")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

INSTRUCTIONS = (
    "safety-gate keeps the action history of Kubernetes workloads and refuses remediation that oscillates "
    "(scale up/down loops, resource thrashing, ineffective repeats, cascading changes, fights with the HPA). "
    "Before acting on a workload, call validate_action_safety with the action you intend: it returns the "
    "verdict the admission webhook would give right now, without recording anything. Use check_action_history "
    "and detect_oscillation_patterns to understand why, and get_action_effectiveness to pick an action that "
    "has worked before."
)

_T = TypeVar("_T")


def _tool_errors(fn: Callable[..., Awaitable[_T]]) -> Callable[..., Awaitable[_T]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> _T:
        try:
            return await fn(*args, **kwargs)
        except tools.ToolInputError as exc:
            raise ToolError(str(exc)) from exc
        except StoreError as exc:
            # What the REST API answers 503: the agent should retry, not take it for an empty history.
            raise ToolError(f"history store unavailable ({type(exc).__name__}: {exc}); try again") from exc

    return wrapper


def build_server(runtime: Runtime, *, log_level: str = "INFO") -> MCPServer:
    """An ``MCPServer`` exposing the seed's tools over a started runtime."""
    level = log_level.upper() if log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"
    server: MCPServer = MCPServer("safety-gate", version=webhook.__version__, instructions=INSTRUCTIONS,
                                  log_level=level)  # type: ignore[arg-type]

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    async def check_action_history(
        namespace: Annotated[str, Field(description="Namespace of the workload")],
        resource_kind: Annotated[str, Field(description="Kind of the workload, e.g. Deployment or StatefulSet")],
        resource_name: Annotated[str, Field(description="Name of the workload")],
        time_range: Annotated[str, Field(description="How far back, e.g. '2h', '1d' (units s, m, h, d)")] = "24h",
    ) -> dict[str, Any]:
        """Retrieve the action history of a Kubernetes workload: every recorded action in the time range,
        the oscillation patterns those actions formed, the gate's detections, and an effectiveness summary."""
        return await tools.check_action_history(runtime, namespace=namespace, resource_kind=resource_kind,
                                                resource_name=resource_name, time_range=time_range)

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    async def detect_oscillation_patterns(
        namespace: Annotated[str, Field(description="Namespace of the workload")],
        resource_name: Annotated[str, Field(description="Name of the workload")],
        pattern_types: Annotated[list[str] | None, Field(
            description="Patterns to check (default all): scale-oscillation, resource-thrashing, "
                        "ineffective-loop, cascading-failure, controller-fight")] = None,
        resource_kind: Annotated[str, Field(description="Kind of the workload")] = "Deployment",
    ) -> dict[str, Any]:
        """Check a workload's recent actions for oscillation patterns: for each pattern, whether the recorded
        history contains it (with evidence) and whether the gate has detected it within the pattern's window."""
        return await tools.detect_oscillation_patterns(runtime, namespace=namespace, resource_name=resource_name,
                                                       pattern_types=pattern_types, resource_kind=resource_kind)

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    async def get_action_effectiveness(
        action_type: Annotated[str, Field(description="Action type, e.g. scale_deployment; 'all' for every type")],
        scope: Annotated[str, Field(
            description="global, namespace (per-namespace breakdown), namespace:NAME, resource-type "
                        "(per-kind breakdown) or resource-type:KIND")] = "global",
        time_period: Annotated[str, Field(description="How far back, e.g. '7d', '30d'")] = "30d",
    ) -> dict[str, Any]:
        """Get effectiveness scores (0..1) of an action type: mean, range, 95% interval and sample size."""
        return await tools.get_action_effectiveness(runtime, action_type=action_type, scope=scope,
                                                    time_period=time_period)

    @server.tool(annotations=READ_ONLY)
    @_tool_errors
    async def validate_action_safety(
        namespace: Annotated[str, Field(description="Namespace of the workload")],
        resource_name: Annotated[str, Field(description="Name of the workload")],
        proposed_action: Annotated[str, Field(
            description="Action type, e.g. scale_deployment, increase_resources, restart_deployment")],
        current_state: Annotated[dict[str, Any] | None, Field(
            description="What the workload looks like now, e.g. {\"replicas\": 3}; may carry target_replicas "
                        "and alert_name")] = None,
        resource_kind: Annotated[str, Field(description="Kind of the workload")] = "Deployment",
        actor: Annotated[str | None, Field(
            description="Who will act (Kubernetes username, e.g. system:serviceaccount:NS:NAME); "
                        f"default {tools.DEFAULT_ACTOR}")] = None,
        target_replicas: Annotated[int | None, Field(description="For scale actions: the replica count wanted",
                                                     ge=0, le=tools.MAX_REPLICAS)] = None,
    ) -> dict[str, Any]:
        """Validate whether a proposed action is safe given the workload's history: the admission webhook's
        verdict for it right now (allowed, HTTP code, message, pattern, evidence). Records nothing."""
        return await tools.validate_action_safety(
            runtime, namespace=namespace, resource_name=resource_name, proposed_action=proposed_action,
            current_state=current_state, resource_kind=resource_kind, actor=actor, target_replicas=target_replicas)

    return server


async def serve(runtime: Runtime, *, transport: Transport, host: str, port: int, log_level: str) -> None:
    """Start the runtime, serve until the client goes away (stdio) or the process is stopped (HTTP)."""
    await runtime.start()
    try:
        server = build_server(runtime, log_level=log_level)
        if transport == "stdio":
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async(host=host, port=port)
    finally:
        await runtime.stop()
