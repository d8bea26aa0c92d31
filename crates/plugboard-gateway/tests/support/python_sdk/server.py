"""An MCP server built with the official Python SDK (`mcp`, pinned in requirements.txt), over streamable HTTP,
protected through the SDK's own resource-server auth. The gateway's tests start it with one of:

    python server.py token TOKEN
        accepts only `Authorization: Bearer TOKEN`;
    python server.py introspect ISSUER CLIENT_ID CLIENT_SECRET
        accepts the access tokens the OAuth authorization server ISSUER says are active at its RFC 7662
        introspection endpoint, ISSUER/token/introspection (asked with HTTP Basic authentication as CLIENT_ID), and
        names ISSUER in its protected resource metadata (RFC 9728), so an MCP client can discover where to sign in.

It listens on a free port of 127.0.0.1 and prints that port as its first line of output. The environment variable
MCP_TEST_HTTP picks the SDK's streamable-HTTP flavour: `sessions` (the default: sessions, answers as SSE streams),
`json` (sessions, plain JSON answers) or `stateless` (no sessions, plain JSON answers).

Tools:
- echo(message): the message back.
- count(steps): a progress notification per step, then "counted to N".
- show_credentials(): the Authorization and Cookie headers it was sent (a server that echoes credentials back).
- calls(): the names of the tools called so far, in order (so a test can tell a denied call never arrived).
- delete_everything(): a tool a policy denies.
"""

import base64
import json
import os
import socket
import sys
import urllib.parse
import urllib.request

import anyio
import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer

MODE = sys.argv[1]
LISTENER = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
LISTENER.bind(("127.0.0.1", 0))
PORT = LISTENER.getsockname()[1]
BASE = f"http://127.0.0.1:{PORT}"
CALLED: list[str] = []


class StaticToken:
    """Accepts the one token the integration holds; anything else gets the SDK's 401."""

    def __init__(self, token: str):
        self.token = token

    async def verify_token(self, token: str) -> AccessToken | None:
        if token != self.token:
            return None
        return AccessToken(token=token, client_id="plugboard", scopes=["mcp"])


class Introspected:
    """Accepts the tokens the authorization server says are active (RFC 7662); anything else gets the SDK's 401."""

    def __init__(self, url: str, client_id: str, client_secret: str):
        self.url = url
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.authorization = f"Basic {basic}"

    def ask(self, token: str) -> dict:
        request = urllib.request.Request(
            self.url,
            data=urllib.parse.urlencode({"token": token}).encode(),
            headers={"Authorization": self.authorization, "Content-Type": "application/x-www-form-urlencoded"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    async def verify_token(self, token: str) -> AccessToken | None:
        answer = await anyio.to_thread.run_sync(self.ask, token)
        if not answer.get("active"):
            return None
        scopes = str(answer.get("scope", "")).split()
        return AccessToken(token=token, client_id=str(answer.get("client_id")), scopes=scopes, expires_at=answer.get("exp"))


if MODE == "token":
    VERIFIER = StaticToken(sys.argv[2])
    ISSUER = BASE
elif MODE == "introspect":
    ISSUER = sys.argv[2]
    VERIFIER = Introspected(f"{ISSUER}/token/introspection", sys.argv[3], sys.argv[4])
else:
    sys.exit(f"unknown mode {MODE}: use `token TOKEN` or `introspect URL CLIENT_ID CLIENT_SECRET`")

mcp = MCPServer(
    "python-sdk-test-server",
    token_verifier=VERIFIER,
    auth=AuthSettings(
        issuer_url=ISSUER,
        resource_server_url=f"{BASE}/mcp",
        validate_token_resource=False,
        # Advertised in the protected resource metadata (`scopes_supported`) and required of every token.
        required_scopes=["mcp"],
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
    flavour = os.environ.get("MCP_TEST_HTTP", "sessions")
    app = mcp.streamable_http_app(
        json_response=flavour in ("json", "stateless"),
        stateless_http=flavour == "stateless",
    )
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[LISTENER])
