"""The agent side of steward's MCP tests for protocol revision 2026-07-28:
the official Python SDK 2.x (`mcp`, pinned in requirements-mcp2.txt) as a
client in its default `mode="auto"` (it probes `server/discover`, then
speaks 2026-07-28 statelessly when the server offers it), over streamable
HTTP (`MCP_URL`, the steward token in `MCP_TOKEN`) or over stdio through
`steward mcp NAME` (`MCP_STDIO` = a JSON argv).

argv[1] is a JSON list of steps: {"list": true}, {"call": NAME, "args": {...}}.
Prints one JSON object: the negotiated protocol version, the server's name,
each step's result ({"tools": [...]} or {"isError", "text", "structured",
"meta"}, or {"error"} for a JSON-RPC error), and over HTTP every request
the client sent ({"method", "headers"} with the MCP headers only).
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

MCP_HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-name", "mcp-session-id")


def result_of(result):
    texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
    return {
        "isError": bool(result.is_error),
        "text": "\n".join(texts),
        "structured": result.structured_content,
        "meta": result.meta,
    }


async def run(client, steps):
    info = client.server_info
    out = {"protocolVersion": client.protocol_version, "server": info.name if info else None, "steps": []}
    for step in steps:
        if step.get("list"):
            tools = await client.list_tools()
            out["steps"].append({"tools": [{"name": t.name, "description": t.description} for t in tools.tools]})
        elif "call" in step:
            try:
                result = await client.call_tool(step["call"], step.get("args", {}))
                out["steps"].append(result_of(result))
            except Exception as err:  # a JSON-RPC error: reported, not raised
                out["steps"].append({"error": str(err)})
    return out


async def main():
    steps = json.loads(sys.argv[1])
    if os.environ.get("MCP_STDIO"):
        argv = json.loads(os.environ["MCP_STDIO"])
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
        async with Client(params) as client:
            out = await run(client, steps)
    else:
        sent = []

        async def record(request):
            sent.append(
                {
                    "http": request.method,
                    "headers": {k: v for k, v in request.headers.items() if k.lower() in MCP_HEADERS},
                }
            )

        http = httpx2.AsyncClient(
            headers={"Authorization": "Bearer " + os.environ["MCP_TOKEN"]},
            timeout=httpx2.Timeout(60, read=120),
            event_hooks={"request": [record]},
        )
        async with http:
            async with Client(streamable_http_client(os.environ["MCP_URL"], http_client=http)) as client:
                out = await run(client, steps)
        out["requests"] = sent
    print(json.dumps(out, default=str))


asyncio.run(main())
