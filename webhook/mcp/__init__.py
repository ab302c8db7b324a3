"""The seed's MCP tools (``safety-gate mcp``): an AI agent asks the gate about history, patterns,
effectiveness and safety *before* it acts, and gets the answer the webhook would give.

* ``queries``  — the few read-only SQL queries the tools need beyond the store's own.
* ``analysis`` — which patterns a target's recorded history contains (the detectors, replayed).
* ``tools``    — the four tools as plain async functions over a started ``Runtime``.
* ``server``   — their registration on the ``mcp`` SDK's ``MCPServer`` and the transports.
"""
