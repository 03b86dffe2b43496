"""Added latency of a tools/call through steward, against the same server
directly, in one run (BENCHMARKS.md). The official Python SDK is the client
both ways; the server is posts_server.py's `pid` tool (no work).

usage: mcp_latency.py N   with MCP_URL/MCP_TOKEN (through steward) and
POSTS_SERVER_ARGV (a JSON argv of the same server, run directly over stdio).
Prints one JSON object: p50/p99 in ms, direct and through steward.
"""

import asyncio
import json
import os
import sys
import time

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamablehttp_client


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] * 1000


async def measure(session, n):
    await session.initialize()
    for _ in range(20):  # warm-up
        await session.call_tool("pid", {})
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await session.call_tool("pid", {})
        out.append(time.perf_counter() - t)
    return out


async def main():
    n = int(sys.argv[1])
    argv = json.loads(os.environ["POSTS_SERVER_ARGV"])
    async with stdio_client(StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))) as (r, w):
        async with ClientSession(r, w) as s:
            direct = await measure(s, n)
    headers = {"Authorization": "Bearer " + os.environ["MCP_TOKEN"]}
    async with streamablehttp_client(os.environ["MCP_URL"], headers=headers) as (r, w, _):
        async with ClientSession(r, w) as s:
            steward = await measure(s, n)
    print(json.dumps({
        "n": n,
        "direct_stdio_ms": {"p50": pct(direct, 50), "p99": pct(direct, 99)},
        "through_steward_http_ms": {"p50": pct(steward, 50), "p99": pct(steward, 99)},
    }))


asyncio.run(main())
