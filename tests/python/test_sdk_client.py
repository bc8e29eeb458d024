"""The official Python MCP SDK (`mcp` 2.3.0) drives erlmcp's `core` pack.

Every test runs five times (see conftest.py): stdio node / TCP node through `erlmcp connect`,
each with `mode="legacy"` (a 2025-11-25 session) and the default `mode="auto"` (which speaks
revision 2026-07-28, stateless: erlmcp answers `server/discover` on every transport), and the same
node over Streamable HTTP with `mode="legacy"`. On 2026-07-28 session state crosses requests as a
handle: `session_open` returns one, the kv tools, `node_info` and `session_summary` take it as
their `session` argument, and `erlmcp://session/{handle}/state` reads it. HTTP in `mode="auto"`
and what only HTTP shows (which stream carries what, status codes) are in test_http_client.py.
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

CORE_TOOLS = [
    "echo",
    "add",
    "kv_set",
    "kv_get",
    "kv_list",
    "kv_delete",
    "session_open",
    "session_close",
    "sleep",
    "node_info",
]
NODE_INFO_URI = "erlmcp://node/info"
SESSION_STATE_URI = "erlmcp://session/state"
MODERN = "2026-07-28"


async def state_args(s: Session) -> dict[str, Any]:
    """The arguments that name the state a request works on: none on a 2025-11-25 session
    (initialize bound one), a handle from `session_open` on 2026-07-28."""
    if not s.stateless:
        return {}
    opened = await call(s, "session_open", {})
    handle = opened["session"]
    assert isinstance(handle, str) and len(handle) >= 22, opened
    assert opened["state_uri"] == f"erlmcp://session/{handle}/state", opened
    return {"session": handle}


def state_uri(st: dict[str, Any]) -> str:
    """The state resource of `state_args`' state."""
    return f"erlmcp://session/{st['session']}/state" if st else SESSION_STATE_URI


async def call(s: Session, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool that must succeed; returns its structured content."""
    result = await s.client.call_tool(name, args)
    assert not result.is_error, f"{name}({args}) failed: {result}"
    assert result.structured_content is not None, f"{name}({args}) returned no structuredContent: {result}"
    return result.structured_content


async def ignore_progress(progress: float, total: float | None, message: str | None) -> None:
    """A progress callback that only makes a request report progress."""


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
        caps = c.server_capabilities
        assert caps.tools is not None, caps
        assert caps.resources is not None and caps.resources.subscribe is True, caps
        assert caps.prompts is not None, caps
        assert caps.logging is not None, caps
        out_methods = [m.method for m in s.wire.items if m.out]

        if conn.mode == "legacy":
            # The SDK asks for its newest handshake revision (2025-11-25), which erlmcp serves.
            assert LATEST_HANDSHAKE_VERSION == "2025-11-25"
            assert c.protocol_version == LATEST_HANDSHAKE_VERSION
            assert c.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
            init = c.session.initialize_result
            assert init is not None and init.protocol_version == LATEST_HANDSHAKE_VERSION
            assert s.wire.requests("server/discover") == []
            assert out_methods[:2] == ["initialize", "notifications/initialized"], out_methods
            (initialize,) = s.wire.requests("initialize")
            reply = s.wire.response_to(initialize.id)
            assert reply is not None and reply.msg["result"]["protocolVersion"] == LATEST_HANDSHAKE_VERSION, reply
            # The session is usable.
            assert isinstance(await c.send_ping(), types.EmptyResult)
        else:
            # auto: `server/discover` answered with a result, so the SDK speaks 2026-07-28 on every
            # transport: no initialize, no protocol session; every request carries its `_meta`.
            assert s.stateless and c.protocol_version == MODERN, c.protocol_version
            assert out_methods[0] == "server/discover", out_methods
            assert s.wire.requests("initialize") == [], s.wire.dump()
            (discover,) = s.wire.requests("server/discover")
            reply = s.wire.response_to(discover.id)
            assert reply is not None and MODERN in reply.msg["result"]["supportedVersions"], reply
            assert reply.msg["result"]["resultType"] == "complete", reply
            assert reply.at - discover.at < 5, f"server/discover answered after {reply.at - discover.at:.1f}s"
            r = await call(s, "echo", {"text": "modern"})
            assert r == {"text": "modern"}, r
            (echo,) = [m for m in s.wire.requests("tools/call") if m.msg["params"]["name"] == "echo"]
            assert echo.msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == MODERN, echo
            answer = s.wire.response_to(echo.id)
            assert answer is not None and answer.msg["result"]["resultType"] == "complete", answer


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

        st = await state_args(s)
        called.add("session_open")
        assert await tool(s, "kv_get", {"key": "color", **st}) == {"key": "color", "found": False, "value": None}
        assert await tool(s, "kv_list", st) == {"entries": {}}
        value = {"n": [1, 2.5, {"x": None, "s": "ü"}], "t": True}
        assert await tool(s, "kv_set", {"key": "color", "value": "blue", **st}) == {"key": "color", "ok": True}
        assert await tool(s, "kv_set", {"key": "obj", "value": value, **st}) == {"key": "obj", "ok": True}
        assert await tool(s, "kv_get", {"key": "color", **st}) == {"key": "color", "found": True, "value": "blue"}
        assert await tool(s, "kv_get", {"key": "obj", **st}) == {"key": "obj", "found": True, "value": value}
        assert await tool(s, "kv_list", st) == {"entries": {"color": "blue", "obj": value}}
        assert await tool(s, "kv_set", {"key": "color", "value": "red", **st}) == {"key": "color", "ok": True}
        assert await tool(s, "kv_get", {"key": "color", **st}) == {"key": "color", "found": True, "value": "red"}
        assert await tool(s, "kv_delete", {"key": "color", **st}) == {"key": "color", "deleted": True}
        assert await tool(s, "kv_delete", {"key": "color", **st}) == {"key": "color", "deleted": False}
        assert await tool(s, "kv_list", st) == {"entries": {"obj": value}}

        assert await tool(s, "sleep", {"ms": 10}) == {"slept_ms": 10}
        assert await tool(s, "sleep", {"ms": 0}) == {"slept_ms": 0}

        info = await tool(s, "node_info", st)
        assert info["node"] == conn.node_name, info
        assert isinstance(info["session_id"], str) and info["session_id"], info
        assert info["session_id"] == st.get("session", info["session_id"]), (info, st)
        assert isinstance(info["owner"], str) and info["owner"], info

        # A handle opened on any revision can be closed; its state is gone afterwards.
        spare = await tool(s, "session_open", {})
        assert await tool(s, "kv_set", {"key": "k", "value": 1, "session": spare["session"]}) == {"key": "k", "ok": True}
        assert await tool(s, "session_close", {"handle": spare["session"]}) == {"handle": spare["session"], "closed": True}
        assert await tool(s, "session_close", {"handle": spare["session"]}) == {"handle": spare["session"], "closed": False}
        try:
            gone = await s.client.call_tool("kv_get", {"key": "k", "session": spare["session"]})
        except MCPError as e:
            assert "Unknown session" in e.error.message, e.error
        else:
            raise AssertionError(f"a closed handle must be an error, got {gone}")

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
        sa, sb = await state_args(a), await state_args(b)
        ia, ib = await call(a, "node_info", sa), await call(b, "node_info", sb)
        assert ia["session_id"] != ib["session_id"], (ia, ib)
        await call(a, "kv_set", {"key": "who", "value": "a", **sa})
        assert await call(b, "kv_get", {"key": "who", **sb}) == {"key": "who", "found": False, "value": None}
        await call(b, "kv_set", {"key": "who", "value": "b", **sb})
        assert await call(a, "kv_get", {"key": "who", **sa}) == {"key": "who", "found": True, "value": "a"}
        assert await call(b, "kv_list", sb) == {"entries": {"who": "b"}}
        if sa and conn.transport != "stdio":
            # A handle is not tied to its connection: another client of the node uses it too
            # (each stdio client launches a node of its own).
            assert await call(b, "kv_get", {"key": "who", **sa}) == {"key": "who", "found": True, "value": "a"}


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

        st = await state_args(s)
        uri = state_uri(st)
        info = await call(s, "node_info", st)
        state = json.loads(only_text((await s.client.read_resource(uri)).contents))
        assert state["session_id"] == info["session_id"] and state["kv"] == {}, state

        await call(s, "kv_set", {"key": "k", "value": [1, "two"], **st})
        read = await s.client.read_resource(uri)
        assert str(read.contents[0].uri) == uri
        state = json.loads(only_text(read.contents))
        assert state["kv"] == {"k": [1, "two"]}, state
        assert state["owner"] == info["owner"], (state, info)

        with pytest.raises(MCPError):
            await s.client.read_resource("erlmcp://no/such/resource")
        if st:
            # Without a handle, the session's own state does not exist on 2026-07-28: -32602.
            with pytest.raises(MCPError) as e:
                await s.client.read_resource(SESSION_STATE_URI)
            assert e.value.error.code == -32602 and "session_open" in e.value.error.message, e.value.error


async def test_subscribe_and_receive_resource_updated(conn: Conn) -> None:
    def updated(uri: str) -> Any:
        return lambda m: isinstance(m, types.ResourceUpdatedNotification) and str(m.params.uri) == uri

    async with conn.session() as s:
        if s.stateless:
            # 2026-07-28: subscriptions/listen on the handle's state resource.
            st = await state_args(s)
            uri = state_uri(st)
            with anyio.fail_after(WAIT_S):
                async with s.client.listen(resource_subscriptions=[uri]) as sub:
                    assert sub.honored is not None and sub.honored.resource_subscriptions == [uri], sub.honored
                    await call(s, "kv_set", {"key": "watched", "value": 1, **st})
                    async for event in sub:
                        assert str(event.uri) == uri, event
                        break
            state = json.loads(only_text((await s.client.read_resource(uri)).contents))
            assert state["kv"] == {"watched": 1}, state
            return
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

        st = await state_args(s)
        await call(s, "kv_set", {"key": "topic", "value": "erlang", **st})
        got = await s.client.get_prompt("session_summary", st)
        assert got.messages, got
        msg = got.messages[0]
        assert msg.role == "user" and isinstance(msg.content, types.TextContent), msg
        assert "erlang" in msg.content.text and "topic" in msg.content.text, msg.content.text

        detailed = await s.client.get_prompt("session_summary", {"style": "detailed", **st})
        assert isinstance(detailed.messages[0].content, types.TextContent)
        assert "detailed" in detailed.messages[0].content.text, detailed

        # Completion of the prompt's argument (completion/complete).
        completed = await s.client.complete(types.PromptReference(name="session_summary"), {"name": "style", "value": "d"})
        assert completed.completion.values == ["detailed"], completed


async def test_logging_set_level_filters_messages(conn: Conn) -> None:
    def slept(ms: int) -> Any:
        return lambda p: p.data == f"slept {ms} ms"

    if conn.mode == "auto":
        # 2026-07-28 has no logging/setLevel: a request opts in to log messages in its `_meta`
        # (the SDK's `log_level=`), and gets none otherwise.
        async with conn.session(log_level="info") as s:
            await call(s, "sleep", {"ms": 11})
            log = await s.logs.wait_for(slept(11), what='log message "slept 11 ms" at level info')
            assert log.level == "info", log
        async with conn.session() as s:
            await call(s, "sleep", {"ms": 22})
            assert await call(s, "echo", {"text": "sync"}) == {"text": "sync"}
            assert s.logs.matching(slept(22)) == [], "a log message arrived on a request that asked for none"
            with pytest.raises(MCPError) as e:
                await s.client.set_logging_level("info")
            assert e.value.error.code == -32601, e.value.error
        return
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
        st = await state_args(s)
        await call(s, "kv_set", {"key": "before", "value": "cancel", **st})
        outcome: list[Any] = []
        scope = anyio.CancelScope()

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
        assert await call(s, "kv_get", {"key": "before", **st}) == {"key": "before", "found": True, "value": "cancel"}
        assert await call(s, "sleep", {"ms": 50}) == {"slept_ms": 50}
        assert await call(s, "kv_list", st) == {"entries": {"before": "cancel"}}
        # ... and sent no response for the cancelled request.
        late = s.wire.response_to(request.id)
        assert late is None, f"a response was sent for the cancelled request: {late}"
