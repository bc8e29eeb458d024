"""The official Python MCP SDK (`mcp` 2.3.0) over MCP Streamable HTTP (`http://ADDR/mcp`).

Two clients of the net node (see conftest.py):

* `http_legacy`: `mcp.Client(url, mode="legacy")`, a revision 2025-11-25 session. test_sdk_client.py
  runs every core-pack test over it too; the tests here check what only HTTP shows: which HTTP
  response carries which message, status codes, the session header, DELETE at the end.
* `http_auto`: `mcp.Client(url)` with the SDK's default `mode="auto"`. It sends `server/discover`
  (revision 2026-07-28) first: a node that serves 2026-07-28 is then used statelessly (no
  `initialize`, no `Mcp-Session-Id`), one that does not answers with an error and the SDK falls back
  to a 2025-11-25 session. Each test asserts what the negotiated revision implies, so the file
  passes against either node. Stateless, the `kv_*` tools have no session to keep state in and
  answer an `isError` result saying so; every other core tool works, progress included.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared.exceptions import MCPError
from mcp_types.version import LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS

from conftest import WAIT_S, Conn, HttpExchange, Inbox, Session

pytestmark = pytest.mark.anyio

CORE_TOOLS = ["echo", "add", "kv_set", "kv_get", "kv_list", "kv_delete", "sleep", "node_info"]
KV_TOOLS = {
    "kv_set": {"key": "k", "value": 1},
    "kv_get": {"key": "k"},
    "kv_list": {},
    "kv_delete": {"key": "k"},
}
NODE_INFO_URI = "erlmcp://node/info"
SESSION_STATE_URI = "erlmcp://session/state"
SESSION_HEADER = "mcp-session-id"


async def call(s: Session, name: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Calls a tool that must succeed; returns its structured content."""
    result = await s.client.call_tool(name, args, **kwargs)
    assert not result.is_error, f"{name}({args}) failed: {result}"
    assert result.structured_content is not None, f"{name}({args}) returned no structuredContent: {result}"
    return result.structured_content


def texts(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def ignore_progress(progress: float, total: float | None, message: str | None) -> None:
    """A progress callback that only makes a request report progress."""


def only_text(contents: list[Any]) -> str:
    assert len(contents) == 1, contents
    assert isinstance(contents[0], types.TextResourceContents), contents
    return contents[0].text


def post_of(s: Session, method: str, name: str | None = None) -> HttpExchange:
    """The one POST that carried request `method` (of tool/prompt `name`)."""
    assert s.http is not None
    found = [
        x
        for x in s.http.posts(method)
        if name is None or ((x.request_json or {}).get("params") or {}).get("name") == name
    ]
    assert len(found) == 1, f"expected one POST of {method} {name or ''}, got {[str(x) for x in found]}"
    return found[0]


def methods_in(x: HttpExchange) -> list[str | None]:
    """The JSON-RPC methods in a response body, None for a response."""
    return [m.get("method") for m in x.messages()]


async def raw_post(url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx2.Response:
    """One POST outside the SDK (read whole)."""
    async with httpx2.AsyncClient(timeout=WAIT_S) as c:
        return await c.post(
            url,
            json=body,
            headers={"accept": "application/json, text/event-stream", **headers},
        )


# ---------------------------------------------------------------------------------------------
# mode="legacy": a 2025-11-25 session over HTTP


async def test_legacy_session_lifecycle_over_http(http_legacy: Conn) -> None:
    """initialize issues `Mcp-Session-Id`, every later request carries it, notifications get 202,
    the standalone GET stream opens, the client's DELETE ends the session and its id is then 404."""
    async with http_legacy.session() as s:
        assert s.http is not None
        assert s.client.protocol_version == LATEST_HANDSHAKE_VERSION
        assert not s.stateless
        init = post_of(s, "initialize")
        assert init.status == 200, init
        sid = init.resp_headers.get(SESSION_HEADER)
        assert sid and len(sid) >= 16, f"initialize must issue a session id: {init}"
        (init_result,) = [m for m in init.messages() if "result" in m]
        assert init_result["result"]["protocolVersion"] == LATEST_HANDSHAKE_VERSION, init

        initialized = await s.http.wait_for(
            lambda x: x.request_method == "notifications/initialized" and x.status is not None,
            what="the answer to the POST of notifications/initialized",
        )
        assert initialized.status == 202 and initialized.text == "", initialized
        assert initialized.headers.get(SESSION_HEADER) == sid, initialized

        info = await call(s, "node_info", {})
        assert info["session_id"] == sid, (info, sid)
        assert info["node"] == http_legacy.node_name, info

        # The SDK opened the session's standalone stream.
        get = await s.http.wait_for(
            lambda x: x.method == "GET" and x.status is not None, what="the response to the standalone GET"
        )
        assert get.status == 200 and get.content_type == "text/event-stream", get
        assert get.headers.get(SESSION_HEADER) == sid, get

        # Every request after initialize named the session and the negotiated revision.
        for x in s.http.items:
            if x is init or x.method == "DELETE":
                continue
            assert x.headers.get(SESSION_HEADER) == sid, f"request without the session id: {x}"
            assert x.headers.get("mcp-protocol-version") == LATEST_HANDSHAKE_VERSION, x
        url = http_legacy.url
        assert url is not None

    # Leaving the client sent DELETE; the session is gone.
    (delete,) = [x for x in s.http.items if x.method == "DELETE"]
    assert delete.status in (200, 204) and delete.headers.get(SESSION_HEADER) == sid, delete
    r = await raw_post(
        url,
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {SESSION_HEADER: sid, "mcp-protocol-version": LATEST_HANDSHAKE_VERSION},
    )
    assert r.status_code == 404, f"a request on a deleted session must get 404: {r.status_code} {r.text}"


async def test_legacy_resource_update_on_the_standalone_stream(http_legacy: Conn) -> None:
    """`notifications/resources/updated` for a subscription comes on the GET stream, not on the
    response stream of the tool call that changed the resource."""
    async with http_legacy.session() as s:
        assert s.http is not None
        await s.http.wait_for(
            lambda x: x.method == "GET" and x.status == 200, what="the standalone GET stream to open"
        )
        assert isinstance(await s.client.subscribe_resource(SESSION_STATE_URI), types.EmptyResult)

        def updated_on_get(x: HttpExchange) -> bool:
            return x.method == "GET" and any(
                m.get("method") == "notifications/resources/updated"
                and (m.get("params") or {}).get("uri") == SESSION_STATE_URI
                for m in x.messages()
            )

        await call(s, "kv_set", {"key": "watched", "value": [1, 2]})
        get = await s.http.wait_for(updated_on_get, what="notifications/resources/updated on the GET stream")
        # The SDK handed it to the application.
        await s.notes.wait_for(
            lambda m: isinstance(m, types.ResourceUpdatedNotification) and str(m.params.uri) == SESSION_STATE_URI,
            what="the ResourceUpdatedNotification in the message handler",
        )
        kv_set = post_of(s, "tools/call", "kv_set")
        assert "notifications/resources/updated" not in methods_in(kv_set), kv_set
        # Events on the standalone stream carry ids (resumable).
        (ev,) = [
            e
            for e in get.sse_events()
            if "notifications/resources/updated" in (e.get("data") or "")
        ]
        assert ev.get("id"), f"an SSE event without an id: {get}"

        # The resource shows the change; after unsubscribing, no more updates.
        state = json.loads(only_text((await s.client.read_resource(SESSION_STATE_URI)).contents))
        assert state["kv"] == {"watched": [1, 2]}, state
        assert isinstance(await s.client.unsubscribe_resource(SESSION_STATE_URI), types.EmptyResult)
        before = len([m for x in s.http.gets() for m in x.messages() if m.get("method") == "notifications/resources/updated"])
        await call(s, "kv_delete", {"key": "watched"})
        # Best effort: the GET stream is a connection of its own, so this cannot prove that no
        # update is still on its way; it catches one sent before the round trip below.
        await call(s, "echo", {"text": "sync"})
        after = len([m for x in s.http.gets() for m in x.messages() if m.get("method") == "notifications/resources/updated"])
        assert after == before, f"resources/updated after unsubscribe: {s.http.dump()}"


async def test_legacy_progress_and_logs_on_the_request_stream(http_legacy: Conn) -> None:
    """`sleep`'s progress and log messages come on its own POST's SSE stream, before its response,
    each event with an id; the response is the stream's last message."""
    async with http_legacy.session() as s:
        await s.client.set_logging_level("info")
        received = Inbox()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            received.add((progress, total))

        assert await call(s, "sleep", {"ms": 300}, progress_callback=on_progress) == {"slept_ms": 300}
        x = post_of(s, "tools/call", "sleep")
        assert x.status == 200 and x.content_type == "text/event-stream", x
        msgs = x.messages()
        kinds = [m.get("method") for m in msgs]
        assert "notifications/progress" in kinds and "notifications/message" in kinds, x
        assert kinds[-1] is None and msgs[-1].get("result", {}).get("structuredContent") == {"slept_ms": 300}, x
        assert all(k is not None for k in kinds[:-1]), f"more than one response on the stream: {x}"
        progress = [m["params"]["progress"] for m in msgs if m.get("method") == "notifications/progress"]
        assert len(progress) >= 2 and progress == sorted(set(progress)) and progress[-1] == 300, progress
        logs = [m["params"] for m in msgs if m.get("method") == "notifications/message"]
        assert any(p.get("data") == "slept 300 ms" and p.get("level") == "info" for p in logs), logs
        assert all(e.get("id") for e in x.sse_events() if e.get("data")), f"SSE events without ids: {x}"
        await received.wait_for(lambda _: len(received.items) >= len(progress), what="the progress callbacks")
        assert [p for p, _ in received.items] == progress and all(t == 300 for _, t in received.items)
        await s.logs.wait_for(lambda p: p.data == "slept 300 ms", what="the log message in the logging callback")


async def test_legacy_cancel_ends_the_request_stream(http_legacy: Conn) -> None:
    """Cancelling a running `sleep`: the SDK POSTs notifications/cancelled (202) and the server
    ends the sleep's stream without a response; the session goes on."""
    async with http_legacy.session() as s:
        assert s.http is not None
        scope = anyio.CancelScope()
        outcome: list[Any] = []

        async def long_sleep() -> None:
            with scope:
                # With a progress callback the sleep streams (its first progress comes at once), so
                # an HTTP client sees the request in hand from its response headers.
                outcome.append(await s.client.call_tool("sleep", {"ms": 60000}, progress_callback=ignore_progress))

        with anyio.fail_after(WAIT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(long_sleep)
                request = await s.wire.wait_for(
                    lambda m: m.out and m.method == "tools/call" and m.msg["params"]["name"] == "sleep",
                    what="the sleep request on the wire",
                )
                await s.wait_in_hand(request)
                scope.cancel()
        assert outcome == [], outcome

        cancelled = await s.http.wait_for(
            lambda x: x.request_method == "notifications/cancelled" and x.status is not None,
            what="the POST of notifications/cancelled",
        )
        assert cancelled.status == 202, cancelled
        assert cancelled.request_json["params"]["requestId"] == request.id, cancelled
        sleep = s.http.for_request(request.id)
        assert sleep is not None
        await s.http.wait_for(lambda _: sleep.ended is not None, what="the end of the cancelled sleep's stream")
        assert sleep.ended == "eof", f"the server must end a cancelled request's stream: {sleep}"
        assert [m for m in sleep.messages() if "method" not in m] == [], f"a response to a cancelled request: {sleep}"

        assert await call(s, "sleep", {"ms": 20}) == {"slept_ms": 20}


async def test_legacy_two_clients_two_sessions(http_legacy: Conn) -> None:
    async with http_legacy.session() as a, http_legacy.session() as b:
        ia, ib = await call(a, "node_info", {}), await call(b, "node_info", {})
        assert ia["session_id"] and ib["session_id"] and ia["session_id"] != ib["session_id"], (ia, ib)
        await call(a, "kv_set", {"key": "who", "value": "a"})
        assert await call(b, "kv_get", {"key": "who"}) == {"key": "who", "found": False, "value": None}


# ---------------------------------------------------------------------------------------------
# mode="auto": 2026-07-28 stateless if the node serves it, else a 2025-11-25 session


async def test_auto_negotiation(http_auto: Conn) -> None:
    async with http_auto.session() as s:
        assert s.http is not None
        c = s.client
        (discover,) = s.wire.requests("server/discover")
        assert s.wire.items[0] is discover, "auto mode must probe server/discover first"
        probe = post_of(s, "server/discover")
        assert probe.headers.get("mcp-protocol-version") in MODERN_PROTOCOL_VERSIONS, probe
        assert c.server_capabilities.tools is not None, c.server_capabilities

        if s.stateless:
            # 2026-07-28: discover answered with a result; no handshake, no session, no GET stream.
            assert c.protocol_version in MODERN_PROTOCOL_VERSIONS
            reply = s.wire.response_to(discover.id)
            assert reply is not None and "result" in reply.msg, reply
            assert c.protocol_version in reply.msg["result"]["supportedVersions"], reply
            assert s.wire.requests("initialize") == [], s.wire.dump()
            await call(s, "echo", {"text": "x"})
            assert all(SESSION_HEADER not in x.resp_headers for x in s.http.items), s.http.dump()
            assert s.http.gets() == [], "no standalone GET stream without a session"
        else:
            # Fallback: the probe is refused at once (an HTTP 4xx with a JSON-RPC error), then
            # initialize opens a 2025-11-25 session.
            assert c.protocol_version == LATEST_HANDSHAKE_VERSION
            assert probe.status is not None and 400 <= probe.status < 500, probe
            (err,) = probe.messages()
            assert isinstance(err.get("error", {}).get("code"), int) and err["error"].get("message"), probe
            assert probe.status_at is not None and probe.status_at - probe.at < 5, "slow discover answer"
            init = post_of(s, "initialize")
            assert init.status == 200 and init.resp_headers.get(SESSION_HEADER), init
        assert c.server_info is None or c.server_info.name == "erlmcp", c.server_info


async def test_auto_every_core_tool(http_auto: Conn) -> None:
    async with http_auto.session() as s:
        tools = {t.name for t in (await s.client.list_tools()).tools}
        assert set(CORE_TOOLS) <= tools, sorted(tools)

        text = "héllo ✓ \"auto\""
        assert await call(s, "echo", {"text": text}) == {"text": text}
        assert await call(s, "add", {"a": 1.5, "b": 2.25}) == {"sum": 3.75}
        assert await call(s, "sleep", {"ms": 5}) == {"slept_ms": 5}
        info = await call(s, "node_info", {})
        assert info["node"] == http_auto.node_name and info["owner"], info

        if s.stateless:
            # No session: no session id, and every kv tool says why it cannot work...
            assert not info.get("session_id"), info
            for name, args in KV_TOOLS.items():
                r = await s.client.call_tool(name, args)
                assert r.is_error, f"{name} must be an isError result without a session: {r}"
                assert "session_open" in texts(r), f"{name}: {texts(r)!r}"
            # ... until the request names a handle.
            handle = (await call(s, "session_open", {}))["session"]
            st = {"session": handle}
            assert await call(s, "kv_set", {"key": "k", "value": {"n": [1, None]}, **st}) == {"key": "k", "ok": True}
            assert await call(s, "kv_get", {"key": "k", **st}) == {"key": "k", "found": True, "value": {"n": [1, None]}}
            assert await call(s, "kv_list", st) == {"entries": {"k": {"n": [1, None]}}}
            assert await call(s, "kv_delete", {"key": "k", **st}) == {"key": "k", "deleted": True}
            assert (await call(s, "node_info", st))["session_id"] == handle
            assert await call(s, "session_close", {"handle": handle}) == {"handle": handle, "closed": True}
        else:
            assert info["session_id"], info
            assert await call(s, "kv_set", {"key": "k", "value": {"n": [1, None]}}) == {"key": "k", "ok": True}
            assert await call(s, "kv_get", {"key": "k"}) == {"key": "k", "found": True, "value": {"n": [1, None]}}
            assert await call(s, "kv_list", {}) == {"entries": {"k": {"n": [1, None]}}}
            assert await call(s, "kv_delete", {"key": "k"}) == {"key": "k", "deleted": True}
            assert await call(s, "kv_list", {}) == {"entries": {}}

        # An unknown tool fails, and the client goes on.
        try:
            r = await s.client.call_tool("no_such_tool", {})
        except MCPError:
            pass
        else:
            assert r.is_error, r
        assert await call(s, "echo", {"text": "after"}) == {"text": "after"}


async def test_auto_progress_from_sleep(http_auto: Conn) -> None:
    async with http_auto.session() as s:
        received = Inbox()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            received.add((progress, total))

        assert await call(s, "sleep", {"ms": 300}, progress_callback=on_progress) == {"slept_ms": 300}
        x = post_of(s, "tools/call", "sleep")
        token = x.request_json["params"]["_meta"]["progressToken"]
        assert x.content_type == "text/event-stream", f"progress needs an SSE response: {x}"
        notes = [m["params"] for m in x.messages() if m.get("method") == "notifications/progress"]
        assert notes and all(p["progressToken"] == token and p.get("total") == 300 for p in notes), x
        values = [p["progress"] for p in notes]
        assert len(values) >= 2 and values == sorted(set(values)) and values[-1] == 300, values
        assert x.messages()[-1].get("result", {}).get("structuredContent") == {"slept_ms": 300}, x
        await received.wait_for(lambda _: len(received.items) >= len(values), what="the progress callbacks")
        assert [p for p, _ in received.items] == values, received.items


async def test_auto_log_messages(http_auto: Conn) -> None:
    """Stateless, a request opts in to log messages through `_meta` (the SDK's `log_level=`); in
    a session, `logging/setLevel` does."""
    async with http_auto.session(log_level="info") as s:
        if not s.stateless:
            await s.client.set_logging_level("info")
        assert await call(s, "sleep", {"ms": 12}) == {"slept_ms": 12}
        log = await s.logs.wait_for(lambda p: p.data == "slept 12 ms", what='the log message "slept 12 ms"')
        assert log.level == "info", log


async def test_auto_cancel_running_sleep(http_auto: Conn) -> None:
    async with http_auto.session() as s:
        assert s.http is not None
        scope = anyio.CancelScope()
        outcome: list[Any] = []

        async def long_sleep() -> None:
            with scope:
                # With a progress callback the sleep streams (its first progress comes at once), so
                # an HTTP client sees the request in hand from its response headers.
                outcome.append(await s.client.call_tool("sleep", {"ms": 60000}, progress_callback=ignore_progress))

        with anyio.fail_after(WAIT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(long_sleep)
                request = await s.wire.wait_for(
                    lambda m: m.out and m.method == "tools/call" and m.msg["params"]["name"] == "sleep",
                    what="the sleep request on the wire",
                )
                await s.wait_in_hand(request)
                scope.cancel()
        assert outcome == [], outcome
        sleep = s.http.for_request(request.id)
        assert sleep is not None
        if s.stateless:
            # 2026-07-28: closing the request's stream is the cancellation; nothing is POSTed.
            await s.http.wait_for(lambda _: sleep.ended is not None, what="the client to abandon the sleep's POST")
            # Abandoned by the client (before or after the response headers), never answered.
            assert sleep.ended != "eof", sleep
            assert [m for m in sleep.messages() if "method" not in m] == [], f"a response to an abandoned request: {sleep}"
            assert s.http.posts("notifications/cancelled") == [], s.http.dump()
        else:
            cancelled = await s.http.wait_for(
                lambda x: x.request_method == "notifications/cancelled" and x.status is not None,
                what="the POST of notifications/cancelled",
            )
            assert cancelled.status == 202 and cancelled.request_json["params"]["requestId"] == request.id
        assert await call(s, "echo", {"text": "after"}) == {"text": "after"}
        assert await call(s, "sleep", {"ms": 10}) == {"slept_ms": 10}


async def test_auto_resources_and_prompt(http_auto: Conn) -> None:
    async with http_auto.session() as s:
        uris = {str(r.uri) for r in (await s.client.list_resources()).resources}
        assert NODE_INFO_URI in uris, sorted(uris)
        info = json.loads(only_text((await s.client.read_resource(NODE_INFO_URI)).contents))
        assert info["node"] == http_auto.node_name, info
        prompts = {p.name for p in (await s.client.list_prompts()).prompts}
        assert "session_summary" in prompts, sorted(prompts)

        if s.stateless:
            # Session state needs a session: without a handle, reading it is -32602 saying so.
            with pytest.raises(MCPError) as e:
                await s.client.read_resource(SESSION_STATE_URI)
            assert e.value.error.code == -32602 and "session_open" in e.value.error.message, e.value.error
            with pytest.raises(MCPError) as e2:
                await s.client.get_prompt("session_summary")
            assert e2.value.error.code == -32602 and "session_open" in e2.value.error.message, e2.value.error
            # With a handle, the state and the summary are there.
            handle = (await call(s, "session_open", {}))["session"]
            await call(s, "kv_set", {"key": "topic", "value": "erlang", "session": handle})
            uri = f"erlmcp://session/{handle}/state"
            state = json.loads(only_text((await s.client.read_resource(uri)).contents))
            assert state["kv"] == {"topic": "erlang"} and state["session_id"] == handle, state
            got = await s.client.get_prompt("session_summary", {"session": handle})
            msg = got.messages[0]
            assert isinstance(msg.content, types.TextContent) and "erlang" in msg.content.text, got
        else:
            await call(s, "kv_set", {"key": "topic", "value": "erlang"})
            state = json.loads(only_text((await s.client.read_resource(SESSION_STATE_URI)).contents))
            assert state["kv"] == {"topic": "erlang"}, state
            got = await s.client.get_prompt("session_summary")
            msg = got.messages[0]
            assert isinstance(msg.content, types.TextContent) and "erlang" in msg.content.text, got


async def test_plain_http_client_default_mode(http_auto: Conn) -> None:
    """`mcp.Client(url)` exactly as an application writes it (no recording)."""
    assert http_auto.url is not None
    with anyio.fail_after(60):
        async with Client(http_auto.url) as c:
            r = await c.call_tool("add", {"a": 40, "b": 2})
            assert not r.is_error and r.structured_content == {"sum": 42}, r
            r = await c.call_tool("echo", {"text": "plain"})
            assert not r.is_error and r.structured_content == {"text": "plain"}, r


async def test_auto_listen(http_auto: Conn) -> None:
    """Stateless, `subscriptions/listen` replaces resources/subscribe and the GET stream: the
    node acknowledges the filter it honours. In a 2025-11-25 session the SDK refuses to listen."""
    async with http_auto.session() as s:
        if s.stateless:
            with anyio.fail_after(WAIT_S):
                async with s.client.listen(tools_list_changed=True, resource_subscriptions=[NODE_INFO_URI]) as sub:
                    assert sub.honored is not None, sub
                    assert sub.honored.tools_list_changed is True, sub.honored
                    assert sub.honored.resource_subscriptions == [NODE_INFO_URI], sub.honored
            assert s.http is not None and s.http.posts("subscriptions/listen"), s.http.dump()
        else:
            with pytest.raises(ListenNotSupportedError):
                async with s.client.listen(tools_list_changed=True):
                    pass
        assert await call(s, "echo", {"text": "after listen"}) == {"text": "after listen"}
