"""The official Python MCP SDK (`mcp` 2.3.0) drives erlmcp's `core` pack.

Every test runs five times (see conftest.py): stdio node / TCP node through `erlmcp connect`,
each with `mode="legacy"` and the default `mode="auto"`, and the same node over Streamable HTTP
with `mode="legacy"` (a 2025-11-25 session). HTTP in `mode="auto"`, which may negotiate the
stateless revision 2026-07-28, and what only HTTP shows (which stream carries what, status codes)
are in test_http_client.py.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

from conftest import WAIT_S, Conn, Inbox, Session

pytestmark = pytest.mark.anyio

CORE_TOOLS = ["echo", "add", "kv_set", "kv_get", "kv_list", "kv_delete", "sleep", "node_info"]
NODE_INFO_URI = "erlmcp://node/info"
SESSION_STATE_URI = "erlmcp://session/state"


async def call(s: Session, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool that must succeed; returns its structured content."""
    result = await s.client.call_tool(name, args)
    assert not result.is_error, f"{name}({args}) failed: {result}"
    assert result.structured_content is not None, f"{name}({args}) returned no structuredContent: {result}"
    return result.structured_content


def only_text(contents: list[Any]) -> str:
    assert len(contents) == 1, contents
    assert isinstance(contents[0], types.TextResourceContents), contents
    return contents[0].text


# ---------------------------------------------------------------------------------------------


async def test_initialize(conn: Conn) -> None:
    async with conn.session() as s:
        c = s.client
        assert c.server_info is not None and c.server_info.name == "erlmcp", c.server_info
        assert c.server_info.version, c.server_info
        # The SDK asks for its newest handshake revision (2025-11-25), which erlmcp serves.
        assert LATEST_HANDSHAKE_VERSION == "2025-11-25"
        assert c.protocol_version == LATEST_HANDSHAKE_VERSION
        assert c.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        init = c.session.initialize_result
        assert init is not None and init.protocol_version == LATEST_HANDSHAKE_VERSION

        caps = c.server_capabilities
        assert caps.tools is not None, caps
        assert caps.resources is not None and caps.resources.subscribe is True, caps
        assert caps.prompts is not None, caps
        assert caps.logging is not None, caps

        # The handshake as it went over the wire.
        out_methods = [m.method for m in s.wire.items if m.out]
        if conn.mode == "legacy":
            assert s.wire.requests("server/discover") == []
            assert out_methods[:2] == ["initialize", "notifications/initialized"], out_methods
        else:
            # auto: `server/discover` first, answered at once with a JSON-RPC error, then initialize.
            assert out_methods[:3] == ["server/discover", "initialize", "notifications/initialized"], out_methods
            (discover,) = s.wire.requests("server/discover")
            reply = s.wire.response_to(discover.id)
            assert reply is not None and "error" in reply.msg, f"server/discover must get an error, got {reply}"
            assert isinstance(reply.msg["error"].get("code"), int) and reply.msg["error"].get("message"), reply
            assert reply.at - discover.at < 5, f"server/discover answered after {reply.at - discover.at:.1f}s"
        (initialize,) = s.wire.requests("initialize")
        reply = s.wire.response_to(initialize.id)
        assert reply is not None and reply.msg["result"]["protocolVersion"] == LATEST_HANDSHAKE_VERSION, reply

        # The session is usable.
        assert isinstance(await c.send_ping(), types.EmptyResult)


async def test_plain_client(conn: Conn) -> None:
    """`mcp.Client(StdioServerParameters(...))` / `mcp.Client("http://.../mcp")` exactly as an
    application writes it (no wire tap)."""
    with anyio.fail_after(60):
        async with Client(conn.target, mode=conn.mode) as c:
            assert c.server_info is not None and c.server_info.name == "erlmcp"
            r = await c.call_tool("add", {"a": 40, "b": 2})
            assert not r.is_error and r.structured_content == {"sum": 42}, r


async def test_list_tools(conn: Conn) -> None:
    async with conn.session() as s:
        listed = await s.client.list_tools()
        tools = {t.name: t for t in listed.tools}
        # Page through if the server paginates.
        cursor = listed.next_cursor
        while cursor is not None:
            page = await s.client.list_tools(cursor=cursor)
            tools.update({t.name: t for t in page.tools})
            cursor = page.next_cursor
        missing = [n for n in CORE_TOOLS if n not in tools]
        assert not missing, f"core tools missing from tools/list: {missing} (got {sorted(tools)})"
        for name in CORE_TOOLS:
            t = tools[name]
            assert t.description, name
            assert t.input_schema.get("type") == "object", (name, t.input_schema)
            assert t.output_schema is not None and t.output_schema.get("type") == "object", (name, t.output_schema)
        assert set(tools["echo"].input_schema.get("required", [])) == {"text"}
        assert set(tools["add"].input_schema.get("required", [])) == {"a", "b"}
        assert set(tools["kv_set"].input_schema.get("required", [])) == {"key", "value"}
        assert set(tools["sleep"].input_schema.get("required", [])) == {"ms"}


async def test_call_every_core_tool(conn: Conn) -> None:
    called: set[str] = set()

    async def tool(s: Session, name: str, args: dict[str, Any]) -> dict[str, Any]:
        called.add(name)
        return await call(s, name, args)

    async with conn.session() as s:
        text = "héllo, wörld ✓ \"quoted\"\nline two"
        r = await s.client.call_tool("echo", {"text": text})
        assert not r.is_error and r.structured_content == {"text": text}, r
        assert [c.text for c in r.content if isinstance(c, types.TextContent)] == [text], r.content
        called.add("echo")

        assert await tool(s, "add", {"a": 2, "b": 3}) == {"sum": 5}
        assert await tool(s, "add", {"a": 1.5, "b": 2.25}) == {"sum": 3.75}
        assert await tool(s, "add", {"a": -1, "b": 0.5}) == {"sum": -0.5}

        assert await tool(s, "kv_get", {"key": "color"}) == {"key": "color", "found": False, "value": None}
        assert await tool(s, "kv_list", {}) == {"entries": {}}
        value = {"n": [1, 2.5, {"x": None, "s": "ü"}], "t": True}
        assert await tool(s, "kv_set", {"key": "color", "value": "blue"}) == {"key": "color", "ok": True}
        assert await tool(s, "kv_set", {"key": "obj", "value": value}) == {"key": "obj", "ok": True}
        assert await tool(s, "kv_get", {"key": "color"}) == {"key": "color", "found": True, "value": "blue"}
        assert await tool(s, "kv_get", {"key": "obj"}) == {"key": "obj", "found": True, "value": value}
        assert await tool(s, "kv_list", {}) == {"entries": {"color": "blue", "obj": value}}
        assert await tool(s, "kv_set", {"key": "color", "value": "red"}) == {"key": "color", "ok": True}
        assert await tool(s, "kv_get", {"key": "color"}) == {"key": "color", "found": True, "value": "red"}
        assert await tool(s, "kv_delete", {"key": "color"}) == {"key": "color", "deleted": True}
        assert await tool(s, "kv_delete", {"key": "color"}) == {"key": "color", "deleted": False}
        assert await tool(s, "kv_list", {}) == {"entries": {"obj": value}}

        assert await tool(s, "sleep", {"ms": 10}) == {"slept_ms": 10}
        assert await tool(s, "sleep", {"ms": 0}) == {"slept_ms": 0}

        info = await tool(s, "node_info", {})
        assert info["node"] == conn.node_name, info
        assert isinstance(info["session_id"], str) and info["session_id"], info
        assert isinstance(info["owner"], str) and info["owner"], info

    assert called == set(CORE_TOOLS)


async def test_unknown_tool_is_an_error(conn: Conn) -> None:
    async with conn.session() as s:
        # Unknown tool: a JSON-RPC error or an isError result, and the session lives on.
        try:
            r = await s.client.call_tool("no_such_tool", {})
        except MCPError:
            pass
        else:
            assert r.is_error, r
        assert await call(s, "echo", {"text": "still here"}) == {"text": "still here"}


async def test_kv_state_is_per_session(conn: Conn) -> None:
    async with conn.session() as a, conn.session() as b:
        ia, ib = await call(a, "node_info", {}), await call(b, "node_info", {})
        assert ia["session_id"] != ib["session_id"], (ia, ib)
        await call(a, "kv_set", {"key": "who", "value": "a"})
        assert await call(b, "kv_get", {"key": "who"}) == {"key": "who", "found": False, "value": None}
        await call(b, "kv_set", {"key": "who", "value": "b"})
        assert await call(a, "kv_get", {"key": "who"}) == {"key": "who", "found": True, "value": "a"}
        assert await call(b, "kv_list", {}) == {"entries": {"who": "b"}}


async def test_resources_list_and_read(conn: Conn) -> None:
    async with conn.session() as s:
        listed = await s.client.list_resources()
        by_uri = {str(r.uri): r for r in listed.resources}
        assert NODE_INFO_URI in by_uri and SESSION_STATE_URI in by_uri, sorted(by_uri)
        assert by_uri[NODE_INFO_URI].mime_type == "application/json"
        assert by_uri[SESSION_STATE_URI].mime_type == "application/json"

        read = await s.client.read_resource(NODE_INFO_URI)
        assert str(read.contents[0].uri) == NODE_INFO_URI
        assert read.contents[0].mime_type == "application/json"
        node_info = json.loads(only_text(read.contents))
        assert node_info["node"] == conn.node_name, node_info

        info = await call(s, "node_info", {})
        state = json.loads(only_text((await s.client.read_resource(SESSION_STATE_URI)).contents))
        assert state["session_id"] == info["session_id"] and state["kv"] == {}, state

        await call(s, "kv_set", {"key": "k", "value": [1, "two"]})
        read = await s.client.read_resource(SESSION_STATE_URI)
        assert str(read.contents[0].uri) == SESSION_STATE_URI
        state = json.loads(only_text(read.contents))
        assert state["kv"] == {"k": [1, "two"]}, state
        assert state["owner"] == info["owner"], (state, info)

        with pytest.raises(MCPError):
            await s.client.read_resource("erlmcp://no/such/resource")


async def test_subscribe_and_receive_resource_updated(conn: Conn) -> None:
    def updated(uri: str) -> Any:
        return lambda m: isinstance(m, types.ResourceUpdatedNotification) and str(m.params.uri) == uri

    async with conn.session() as s:
        assert isinstance(await s.client.subscribe_resource(SESSION_STATE_URI), types.EmptyResult)

        await call(s, "kv_set", {"key": "watched", "value": 1})
        await s.notes.wait_for(updated(SESSION_STATE_URI), what="notifications/resources/updated after kv_set")
        seen = len(s.notes.matching(updated(SESSION_STATE_URI)))

        # Another change, another notification; the resource reflects it.
        await call(s, "kv_delete", {"key": "watched"})
        await s.notes.wait_for(
            lambda m: len(s.notes.matching(updated(SESSION_STATE_URI))) > seen,
            what="notifications/resources/updated after kv_delete",
        )
        state = json.loads(only_text((await s.client.read_resource(SESSION_STATE_URI)).contents))
        assert state["kv"] == {}, state

        assert isinstance(await s.client.unsubscribe_resource(SESSION_STATE_URI), types.EmptyResult)
        # The notification on the wire has the spec's shape.
        note = next(m for m in s.wire.items if not m.out and m.method == "notifications/resources/updated")
        assert note.msg["params"]["uri"] == SESSION_STATE_URI and "id" not in note.msg, note


async def test_prompt_session_summary(conn: Conn) -> None:
    async with conn.session() as s:
        prompts = {p.name: p for p in (await s.client.list_prompts()).prompts}
        assert "session_summary" in prompts, sorted(prompts)
        args = {a.name: a for a in prompts["session_summary"].arguments or []}
        assert "style" in args and not args["style"].required, args

        await call(s, "kv_set", {"key": "topic", "value": "erlang"})
        got = await s.client.get_prompt("session_summary")
        assert got.messages, got
        msg = got.messages[0]
        assert msg.role == "user" and isinstance(msg.content, types.TextContent), msg
        assert "erlang" in msg.content.text and "topic" in msg.content.text, msg.content.text

        detailed = await s.client.get_prompt("session_summary", {"style": "detailed"})
        assert isinstance(detailed.messages[0].content, types.TextContent)
        assert "detailed" in detailed.messages[0].content.text, detailed

        # Completion of the prompt's argument (completion/complete).
        completed = await s.client.complete(types.PromptReference(name="session_summary"), {"name": "style", "value": "d"})
        assert completed.completion.values == ["detailed"], completed


async def test_logging_set_level_filters_messages(conn: Conn) -> None:
    def slept(ms: int) -> Any:
        return lambda p: p.data == f"slept {ms} ms"

    async with conn.session() as s:
        assert isinstance(await s.client.set_logging_level("info"), types.EmptyResult)
        await call(s, "sleep", {"ms": 11})
        log = await s.logs.wait_for(slept(11), what='log message "slept 11 ms" at level info')
        assert log.level == "info", log

        # At level error, the info message of `sleep` must not arrive.
        await s.client.set_logging_level("error")
        await call(s, "sleep", {"ms": 22})
        # Back to info: once "slept 33 ms" is here, a "slept 22 ms" sent before it would be here too
        # (one ordered stream).
        await s.client.set_logging_level("info")
        await call(s, "sleep", {"ms": 33})
        await s.logs.wait_for(slept(33), what='log message "slept 33 ms" at level info')
        assert await call(s, "echo", {"text": "sync"}) == {"text": "sync"}
        assert s.logs.matching(slept(22)) == [], "a log message at info arrived while the level was error"
        on_wire = [m for m in s.wire.items if not m.out and m.method == "notifications/message"]
        assert all(m.msg["params"]["data"] != "slept 22 ms" for m in on_wire), [str(m) for m in on_wire]


async def test_progress_from_sleep(conn: Conn) -> None:
    async with conn.session() as s:
        received = Inbox()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            received.add((progress, total, message))

        r = await s.client.call_tool("sleep", {"ms": 300}, progress_callback=on_progress)
        assert not r.is_error and r.structured_content == {"slept_ms": 300}, r

        (request,) = [m for m in s.wire.requests("tools/call") if m.msg["params"]["name"] == "sleep"]
        token = request.msg["params"]["_meta"]["progressToken"]
        notes = [m for m in s.wire.items if not m.out and m.method == "notifications/progress"]
        assert notes and all(m.msg["params"]["progressToken"] == token for m in notes), [str(m) for m in notes]
        values = [m.msg["params"]["progress"] for m in notes]
        assert len(values) >= 2 and values == sorted(set(values)), f"progress must increase: {values}"
        assert values[-1] == 300 and all(m.msg["params"].get("total") == 300 for m in notes), values
        # All progress came before the response (none may follow it).
        response_at = next(i for i, m in enumerate(s.wire.items) if not m.out and m.is_response and m.id == request.id)
        last_progress_at = max(i for i, m in enumerate(s.wire.items) if m in notes)
        assert last_progress_at < response_at
        # The SDK hands each one to the progress callback.
        await received.wait_for(lambda _: len(received.items) >= len(values), what=f"{len(values)} progress callbacks")
        assert sorted(p for p, _, _ in received.items) == values, received.items
        assert all(total == 300 for _, total, _ in received.items), received.items


async def test_cancel_running_sleep(conn: Conn) -> None:
    async with conn.session() as s:
        await call(s, "kv_set", {"key": "before", "value": "cancel"})
        outcome: list[Any] = []
        scope = anyio.CancelScope()

        async def long_sleep() -> None:
            with scope:
                outcome.append(await s.client.call_tool("sleep", {"ms": 60000}))

        with anyio.fail_after(WAIT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(long_sleep)
                request = await s.wire.wait_for(
                    lambda m: m.out and m.method == "tools/call" and m.msg["params"]["name"] == "sleep",
                    what="the sleep request on the wire",
                )
                # The server has the sleep in hand (see Session.wait_in_hand), and still answers.
                await s.wait_in_hand(request)
                assert await call(s, "echo", {"text": "during"}) == {"text": "during"}
                scope.cancel()
        assert outcome == [], f"the 60 s sleep returned instead of being cancelled: {outcome}"

        # The SDK told the server: notifications/cancelled naming the request.
        cancelled = await s.wire.wait_for(
            lambda m: m.out and m.method == "notifications/cancelled", what="notifications/cancelled"
        )
        assert cancelled.msg["params"]["requestId"] == request.id, cancelled

        # The session still answers, with its state intact.
        assert await call(s, "echo", {"text": "after"}) == {"text": "after"}
        assert await call(s, "kv_get", {"key": "before"}) == {"key": "before", "found": True, "value": "cancel"}
        assert await call(s, "sleep", {"ms": 50}) == {"slept_ms": 50}
        assert await call(s, "kv_list", {}) == {"entries": {"before": "cancel"}}
        # ... and sent no response for the cancelled request.
        late = s.wire.response_to(request.id)
        assert late is None, f"a response was sent for the cancelled request: {late}"
