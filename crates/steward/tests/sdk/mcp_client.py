"""The agent side of steward's MCP tests: the official Python SDK's client
over streamable HTTP (`MCP_URL`, the steward token in `MCP_TOKEN`), or over
stdio through `steward mcp NAME` (`MCP_STDIO` = a JSON argv).

argv[1] is a JSON list of steps: {"list": true}, {"call": NAME, "args": {...}},
{"sleep": SECONDS}, {"prompts": true}, {"resources": true}, {"read": URI},
{"cancel_slow": SECONDS} (call `slow`, cancel it after 1 s),
{"progress": NAME, "args": {...}, "times": N, "vary": ARG} (N calls with a progress callback),
{"kill_previous": true} (SIGKILL the pid the previous step answered). Prints one JSON object: the negotiated protocol version
and each step's result ({"tools": [...]} or {"isError", "text", "structured"}).
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, types


def result_of(result):
    texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
    return {
        "isError": bool(result.isError),
        "text": "\n".join(texts),
        "structured": result.structuredContent,
        "meta": result.meta,
    }


async def run(session, steps):
    init = await session.initialize()
    out = {"protocolVersion": init.protocolVersion, "server": init.serverInfo.name, "steps": []}
    for step in steps:
        if step.get("list"):
            tools = await session.list_tools()
            out["steps"].append({"tools": [{"name": t.name, "description": t.description} for t in tools.tools]})
        elif "call" in step:
            try:
                result = await session.call_tool(step["call"], step.get("args", {}))
                out["steps"].append(result_of(result))
            except Exception as err:  # a JSON-RPC error: reported, not raised
                out["steps"].append({"error": str(err)})
        elif "progress" in step:
            # {"progress": NAME, "args": {...}, "times": N, "vary": ARG}: N
            # calls with a progress callback (ARG set to 0..N-1, so they are
            # not one call repeated); each call's progress, in order.
            calls = []
            for i in range(step.get("times", 1)):
                args = dict(step.get("args", {}))
                if "vary" in step:
                    args[step["vary"]] = args.get(step["vary"], 0) + i
                seen = []

                async def on_progress(progress, total, message, seen=seen):
                    seen.append({"progress": progress, "total": total, "message": message})

                result = await session.call_tool(step["progress"], args, progress_callback=on_progress)
                calls.append({"result": result_of(result), "progress": seen})
            out["steps"].append({"calls": calls})
        elif step.get("prompts"):
            try:
                prompts = await session.list_prompts()
                out["steps"].append({"prompts": [p.name for p in prompts.prompts]})
            except Exception as err:  # a JSON-RPC error: reported, not raised
                out["steps"].append({"error": str(err)})
        elif step.get("resources"):
            try:
                resources = await session.list_resources()
                out["steps"].append({"resources": [str(r.uri) for r in resources.resources]})
            except Exception as err:
                out["steps"].append({"error": str(err)})
        elif "read" in step:
            read = await session.read_resource(step["read"])
            out["steps"].append({"text": "\n".join(getattr(c, "text", "") for c in read.contents)})
        elif "cancel_slow" in step:
            # The SDK numbers requests from 0: the next id is the slow call's.
            request_id = session._request_id
            task = asyncio.create_task(session.call_tool("slow", {"seconds": step["cancel_slow"]}))
            await asyncio.sleep(1)
            await session.send_notification(
                types.ClientNotification(
                    types.CancelledNotification(
                        params=types.CancelledNotificationParams(requestId=request_id, reason="test")
                    )
                )
            )
            try:
                await asyncio.wait_for(task, 15)
                outcome = "answered"
            except Exception as err:
                outcome = type(err).__name__ + ": " + str(err)
            out["steps"].append({"cancelled": outcome})
        elif step.get("kill_previous"):
            os.kill(int(out["steps"][-1]["text"]), 9)
            out["steps"].append({"killed": True})
        elif "sleep" in step:
            await asyncio.sleep(step["sleep"])
    return out


async def main():
    steps = json.loads(sys.argv[1])
    if os.environ.get("MCP_STDIO"):
        from mcp.client.stdio import StdioServerParameters, stdio_client

        argv = json.loads(os.environ["MCP_STDIO"])
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                out = await run(session, steps)
    else:
        from mcp.client.streamable_http import streamablehttp_client

        headers = {"Authorization": "Bearer " + os.environ["MCP_TOKEN"]}
        async with streamablehttp_client(os.environ["MCP_URL"], headers=headers, timeout=60, sse_read_timeout=120) as (
            read,
            write,
            _,
        ):
            async with ClientSession(read, write) as session:
                out = await run(session, steps)
    print(json.dumps(out, default=str))


asyncio.run(main())
