"""A small MCP server (official Python SDK, stdio) for steward's MCP tests.

Tools: create_post / delete_post (each call is appended to $POSTS_LOG as one
JSON line, so a test can count what the server really received), whoami
(answers with the $SOCIAL_TOKEN it was given: steward must scrub it),
big (a result of N bytes), ask (asks the client for a sampling
completion and says whether it got one), burst (N log notifications, then the answer), junk (prints a non-JSON line on stdout, then
answers), slow (sleeps; for cancellation). create_post's description is
read from $POSTS_DESCRIPTION_FILE when set, so a test can change it
between two runs (tool pinning). A line of junk is printed on stdout before
the server starts, like a chatty launcher.
"""

import json
import os
import sys
import time

import anyio

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import SamplingMessage, TextContent
from pydantic import BaseModel

LOG = os.environ.get("POSTS_LOG")
DESCRIPTION = "Publish a post."
if os.environ.get("POSTS_DESCRIPTION_FILE") and os.path.exists(os.environ["POSTS_DESCRIPTION_FILE"]):
    with open(os.environ["POSTS_DESCRIPTION_FILE"]) as f:
        DESCRIPTION = f.read().strip()

mcp = FastMCP("posts")
_next = [1]


def record(tool, arguments):
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps({"tool": tool, "arguments": arguments, "pid": os.getpid()}) + "\n")


class Post(BaseModel):
    id: str
    text: str


class Deleted(BaseModel):
    deleted: str


@mcp.tool(description=DESCRIPTION)
def create_post(text: str) -> Post:
    post_id = f"{os.getpid()}-{_next[0]}"
    _next[0] += 1
    record("create_post", {"text": text})
    return Post(id=post_id, text=text)


@mcp.tool()
def delete_post(id: str) -> Deleted:
    """Delete a post by id."""
    record("delete_post", {"id": id})
    return Deleted(deleted=id)


@mcp.tool()
def whoami() -> str:
    """Say which token the server holds."""
    return "my token is " + os.environ.get("SOCIAL_TOKEN", "<none>")


@mcp.tool(structured_output=False)
def big(size: int) -> str:
    """Answer with `size` bytes of text."""
    return "x" * size


@mcp.tool()
def junk() -> str:
    """Print a line that is not JSON-RPC on stdout, then answer."""
    sys.stdout.write("this is not json-rpc\n")
    sys.stdout.flush()
    return "still here"


@mcp.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer (a cancelled call never records slow_done)."""
    record("slow_started", {"seconds": seconds})
    await anyio.sleep(seconds)
    record("slow_done", {"seconds": seconds})
    return "done"


@mcp.tool()
async def burst(n: int, ctx: Context) -> str:
    """Send `n` log notifications while the call runs, then answer."""
    for i in range(n):
        await ctx.info(f"burst line {i}")
    return f"sent {n}"


@mcp.tool()
async def ask(ctx: Context) -> str:
    """Ask the client for a sampling completion; say what came back."""
    try:
        await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text="hello"))], max_tokens=5
        )
        return "answered"
    except Exception as err:
        return "refused: " + str(err)


@mcp.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


if __name__ == "__main__":
    sys.stdout.write("posts server starting (not JSON-RPC)\n")
    sys.stdout.flush()
    mcp.run("stdio")
