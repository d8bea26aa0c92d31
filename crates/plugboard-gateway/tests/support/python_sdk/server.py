"""An MCP server built with the official Python SDK (`mcp`, pinned in requirements.txt), over streamable HTTP,
protected by a bearer token through the SDK's own resource-server auth. The gateway's tests start it with:

    python server.py TOKEN

It listens on a free port of 127.0.0.1 and prints that port as its first line of output.

Tools:
- echo(message): the message back.
- count(steps): a progress notification per step, then "counted to N".
- show_credentials(): the Authorization and Cookie headers it was sent (a server that echoes credentials back).
- calls(): the names of the tools called so far, in order (so a test can tell a denied call never arrived).
- delete_everything(): a tool a policy denies.
"""

import socket
import sys

import anyio
import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer

TOKEN = sys.argv[1]
LISTENER = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
LISTENER.bind(("127.0.0.1", 0))
PORT = LISTENER.getsockname()[1]
BASE = f"http://127.0.0.1:{PORT}"
CALLED: list[str] = []


class StaticToken:
    """Accepts the one token the integration holds; anything else gets the SDK's 401."""

    async def verify_token(self, token: str) -> AccessToken | None:
        if token != TOKEN:
            return None
        return AccessToken(token=token, client_id="plugboard", scopes=[])


mcp = MCPServer(
    "python-sdk-test-server",
    token_verifier=StaticToken(),
    auth=AuthSettings(
        issuer_url=BASE,
        resource_server_url=f"{BASE}/mcp",
        validate_token_resource=False,
    ),
)


@mcp.tool()
def echo(message: str) -> str:
    """Returns the message."""
    CALLED.append("echo")
    return message


@mcp.tool()
async def count(steps: int, ctx: Context) -> str:
    """Reports a progress notification per step."""
    CALLED.append("count")
    for step in range(1, steps + 1):
        await anyio.sleep(0.2)
        await ctx.report_progress(step, steps, f"step {step}")
    return f"counted to {steps}"


@mcp.tool()
def show_credentials(ctx: Context) -> str:
    """Returns the credentials this request carried."""
    CALLED.append("show_credentials")
    headers = ctx.headers or {}
    return f"authorization={headers.get('authorization')} cookie={headers.get('cookie')}"


@mcp.tool()
def calls() -> str:
    """The tools called so far."""
    return ",".join(CALLED)


@mcp.tool()
def delete_everything() -> str:
    """Deletes everything."""
    CALLED.append("delete_everything")
    return "deleted"


if __name__ == "__main__":
    LISTENER.listen(128)
    print(PORT, flush=True)
    uvicorn.Server(uvicorn.Config(mcp.streamable_http_app(), log_level="warning")).run(sockets=[LISTENER])
