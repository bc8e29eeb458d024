"""Fixtures for driving erlmcp with the official Python MCP SDK (`mcp` 2.3.0).

Each test in test_sdk_client.py runs against five connections (`conn` fixture):

* ``stdio-legacy`` / ``stdio-auto``: the SDK launches ``erlmcp node --stdio`` itself;
* ``tcp-legacy`` / ``tcp-auto``: one ``erlmcp node --tcp 127.0.0.1:0 --http 127.0.0.1:0`` per pytest
  session (the "net node"), reached through the stdio bridge ``erlmcp connect tcp://127.0.0.1:PORT``
  that the SDK launches;
* ``http-legacy``: the same net node over MCP Streamable HTTP, ``mcp.Client("http://.../mcp")``.

``legacy`` is ``mcp.Client(..., mode="legacy")`` (initialize handshake); ``auto`` is the SDK's
default, which first sends ``server/discover`` (revision 2026-07-28) and falls back to
``initialize`` on an error. Over HTTP, ``auto`` may end up stateless (2026-07-28) or in a
2025-11-25 session, depending on what the node serves: test_http_client.py has those tests
(``http_auto`` fixture), written for both outcomes.

Every session records the JSON-RPC messages both ways (a tap between the SDK's transport and its
session), the launched process's stderr, and over HTTP every HTTP exchange (request, status,
headers and the response body as it streamed); a failing test prints all of it, so a server bug
shows up as the exact exchange.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import httpx2
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
from mcp.shared.message import SessionMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

ROOT = Path(__file__).resolve().parents[2]
ERLMCP_BIN = os.environ.get("ERLMCP_BIN") or str(ROOT / "target" / "debug" / "erlmcp")

# Upper bound for one whole test (connect, exchanges, close). Generous: a debug build on a busy
# 2-core machine. Waits inside tests use their own, shorter bounds.
TEST_TIMEOUT_S = 120
# Upper bound for a single wait for something the server must send.
WAIT_S = 20
# How long the TCP node may take to log its address, and to exit after SIGTERM.
NODE_START_TIMEOUT_S = 60
NODE_STOP_TIMEOUT_S = 30

STDIO_NODE_NAME = "pytest-stdio@127.0.0.1"
NET_NODE_NAME = "pytest-net@127.0.0.1"

# The node logs each bound listener address, e.g. `... listening tcp=127.0.0.1:40123` and
# `... listening http=127.0.0.1:40124` (node/src/tcp.rs, node/src/http.rs).
LISTEN_RE = re.compile(r"listening.*?\b(?P<kind>tcp|http)=\"?(?:[a-z]+://)?(?P<addr>\d+\.\d+\.\d+\.\d+:\d+)")
# The listeners the net node must report before the tests start.
NET_LISTENERS = ("tcp", "http")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------------------------------
# Waitable records (wire messages, notifications, log messages)


class Inbox:
    """An append-only list that tasks can wait on (no polling, no sleeps)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = anyio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self.touch()

    def touch(self) -> None:
        """Wakes the waiters: an item changed (e.g. more of an HTTP body arrived)."""
        self._changed.set()
        self._changed = anyio.Event()

    def matching(self, pred: Callable[[Any], bool]) -> list[Any]:
        return [i for i in self.items if pred(i)]

    async def wait_for(self, pred: Callable[[Any], bool], timeout: float = WAIT_S, what: str = "") -> Any:
        """The first item matching `pred`, waiting up to `timeout` seconds for it to arrive."""
        try:
            with anyio.fail_after(timeout):
                while True:
                    changed = self._changed
                    for item in self.items:
                        if pred(item):
                            return item
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}") from None


@dataclass
class WireMsg:
    """One JSON-RPC message as it crossed the transport: `out` is client->server."""

    out: bool
    msg: dict[str, Any]
    at: float = field(default_factory=time.monotonic, compare=False)

    @property
    def method(self) -> str | None:
        return self.msg.get("method")

    @property
    def id(self) -> Any:
        return self.msg.get("id")

    @property
    def is_response(self) -> bool:
        return "method" not in self.msg and ("result" in self.msg or "error" in self.msg)

    def __str__(self) -> str:
        text = json.dumps(self.msg, separators=(",", ":"), ensure_ascii=False)
        if len(text) > 4000:
            text = text[:4000] + "...(truncated)"
        return f"{'->' if self.out else '<-'} {text}"


class Wire(Inbox):
    def record(self, out: bool, item: SessionMessage | Exception) -> None:
        if isinstance(item, Exception):
            self.add(WireMsg(out, {"transport_exception": repr(item)}))
        else:
            self.add(WireMsg(out, item.message.model_dump(by_alias=True, exclude_unset=True, mode="json")))

    def requests(self, method: str) -> list[WireMsg]:
        return [m for m in self.items if m.out and m.method == method and "id" in m.msg]

    def response_to(self, request_id: Any) -> WireMsg | None:
        for m in self.items:
            if not m.out and m.is_response and m.id == request_id:
                return m
        return None

    async def wait_response(self, request_id: Any, timeout: float = WAIT_S) -> WireMsg:
        return await self.wait_for(
            lambda m: not m.out and m.is_response and m.id == request_id,
            timeout,
            what=f"the response to request id {request_id!r}",
        )

    def dump(self) -> str:
        return "\n".join(str(m) for m in self.items) or "(no messages)"


class _TapRead:
    """Read side of the transport, recording what the server sent."""

    def __init__(self, inner: Any, wire: Wire) -> None:
        self._inner, self._wire = inner, wire

    async def receive(self) -> SessionMessage | Exception:
        item = await self._inner.receive()
        self._wire.record(False, item)
        return item

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _TapRead:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _TapRead:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _TapWrite:
    """Write side of the transport, recording what the client sent."""

    def __init__(self, inner: Any, wire: Wire) -> None:
        self._inner, self._wire = inner, wire

    async def send(self, item: SessionMessage) -> None:
        self._wire.record(True, item)
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _TapWrite:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@asynccontextmanager
async def tapped_stdio(params: StdioServerParameters, wire: Wire, errlog: Any) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's own stdio transport (it launches `params`), with both directions recorded."""
    async with stdio_client(params, errlog=errlog) as (read, write):
        yield _TapRead(read, wire), _TapWrite(write, wire)


# ---------------------------------------------------------------------------------------------
# HTTP exchanges (Streamable HTTP): recorded by an httpx2 transport under the SDK's client


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The complete events of an SSE body: `{"id", "event", "data", "retry"}` (data joined, raw)."""
    events: list[dict[str, Any]] = []
    blocks = text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
    for block in blocks[:-1]:  # the last block is incomplete (or empty)
        ev: dict[str, Any] = {}
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name in ("id", "event", "retry"):
                ev[name] = value
        if data:
            ev["data"] = "\n".join(data)
        if ev:
            events.append(ev)
    return events


@dataclass
class HttpExchange:
    """One HTTP request of the SDK's transport and its response, as it streamed."""

    n: int
    method: str
    headers: dict[str, str]  # request headers (lower-case names)
    body: str  # request body
    at: float = field(default_factory=time.monotonic)
    status: int | None = None
    resp_headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    status_at: float | None = None
    # How the response body ended: None (still open), "eof" (the server ended it), "closed"
    # (the client closed it first), or an error.
    ended: str | None = None

    @property
    def content_type(self) -> str:
        return self.resp_headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    @property
    def request_json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def request_id(self) -> Any:
        msg = self.request_json
        return msg.get("id") if isinstance(msg, dict) and "method" in msg else None

    @property
    def request_method(self) -> str | None:
        msg = self.request_json
        return msg.get("method") if isinstance(msg, dict) else None

    def sse_events(self) -> list[dict[str, Any]]:
        return parse_sse(self.text) if self.content_type == "text/event-stream" else []

    def messages(self) -> list[dict[str, Any]]:
        """The JSON-RPC messages of the response body (a JSON body, or the SSE events' data)."""
        if self.content_type == "application/json":
            try:
                msg = json.loads(self.text)
            except ValueError:
                return []
            return [msg] if isinstance(msg, dict) else []
        out = []
        for ev in self.sse_events():
            try:
                msg = json.loads(ev.get("data") or "null")
            except ValueError:
                continue
            if isinstance(msg, dict):
                out.append(msg)
        return out

    def __str__(self) -> str:
        shown = ("mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "last-event-id", "accept")
        req_h = " ".join(f"{k}: {v};" for k, v in self.headers.items() if k in shown)
        resp_h = " ".join(
            f"{k}: {v};" for k, v in self.resp_headers.items() if k in ("content-type", "mcp-session-id", "allow")
        )
        body = self.text
        if len(body) > 4000:
            body = body[:4000] + "...(truncated)"
        lines = [f"#{self.n} {self.method} {req_h}"]
        if self.body:
            lines.append(f"   {self.body[:2000]}")
        if self.status is None:
            lines.append(f"   -> (no response) {self.ended or ''}")
        else:
            lines.append(f"   -> {self.status} {resp_h} [body {self.ended or 'open'}]")
            if body:
                lines.extend("      " + line for line in body.rstrip("\n").split("\n"))
        return "\n".join(lines)


class HttpLog(Inbox):
    """Every HTTP exchange of one client, in the order the requests were sent."""

    def begin(self, request: httpx2.Request) -> HttpExchange:
        try:
            body = request.content.decode(errors="replace")
        except httpx2.RequestNotRead:
            body = "(streamed body)"
        ex = HttpExchange(
            len(self.items) + 1, request.method, {k.lower(): v for k, v in request.headers.items()}, body
        )
        self.add(ex)
        return ex

    def posts(self, method: str) -> list[HttpExchange]:
        return [x for x in self.items if x.method == "POST" and x.request_method == method]

    def for_request(self, request_id: Any) -> HttpExchange | None:
        """The POST that carried the JSON-RPC request `request_id`."""
        return next((x for x in self.items if x.method == "POST" and x.request_id == request_id), None)

    def gets(self) -> list[HttpExchange]:
        return [x for x in self.items if x.method == "GET"]

    def dump(self) -> str:
        return "\n".join(str(x) for x in self.items) or "(no HTTP exchanges)"


class _TeeBody(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, ex: HttpExchange, log: HttpLog) -> None:
        self._inner, self._ex, self._log = inner, ex, log

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                self._ex.chunks.append(chunk)
                self._log.touch()
                yield chunk
        except Exception as e:
            self._ex.ended = self._ex.ended or f"error: {e!r}"
            self._log.touch()
            raise
        self._ex.ended = self._ex.ended or "eof"
        self._log.touch()

    async def aclose(self) -> None:
        self._ex.ended = self._ex.ended or "closed"
        self._log.touch()
        await self._inner.aclose()


class RecordingTransport(httpx2.AsyncBaseTransport):
    """httpx2's own transport, recording each exchange (the body as the client reads it)."""

    def __init__(self, log: HttpLog) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.log = log

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        ex = self.log.begin(request)
        try:
            resp = await self._inner.handle_async_request(request)
        except BaseException as e:
            ex.ended = f"error: {e!r}"
            self.log.touch()
            raise
        ex.status, ex.status_at = resp.status_code, time.monotonic()
        ex.resp_headers = {k.lower(): v for k, v in resp.headers.items()}
        self.log.touch()
        return httpx2.Response(
            status_code=resp.status_code,
            headers=resp.headers,
            stream=_TeeBody(resp.stream, ex, self.log),
            extensions=resp.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def recording_http_client(log: HttpLog) -> httpx2.AsyncClient:
    """An httpx2 client like the SDK's default one (same timeouts), recording into `log`."""
    return httpx2.AsyncClient(
        transport=RecordingTransport(log),
        timeout=httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
    )


@asynccontextmanager
async def tapped_http(url: str, wire: Wire, log: HttpLog) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's own Streamable HTTP transport, JSON-RPC and HTTP both recorded."""
    async with recording_http_client(log) as http_client:
        async with streamable_http_client(url, http_client=http_client) as (read, write):
            yield _TapRead(read, wire), _TapWrite(write, wire)


# ---------------------------------------------------------------------------------------------
# The net node (one per pytest session): TCP and Streamable HTTP


class NetNode:
    """`erlmcp node --tcp 127.0.0.1:0 --http 127.0.0.1:0 --admin 127.0.0.1:0` as a subprocess."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.lines: list[str] = []
        self.addrs: dict[str, str] = {}  # "tcp" / "http" -> HOST:PORT
        self._found = threading.Event()
        self.argv = [
            ERLMCP_BIN, "node", "--name", NET_NODE_NAME, "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0",
            "--admin", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--cluster", "127.0.0.1:0",
        ]
        env = dict(os.environ, RUST_BACKTRACE="1", NO_COLOR="1")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name="erlmcp-node-log", daemon=True)
        self._reader.start()

    @property
    def addr(self) -> str | None:
        """The TCP listener's HOST:PORT."""
        return self.addrs.get("tcp")

    @property
    def http_url(self) -> str:
        return f"http://{self.addrs['http']}/mcp"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:
                self.lines.append(line)
                log.write(line)
                log.flush()
                if (m := LISTEN_RE.search(line)) and m.group("kind") not in self.addrs:
                    self.addrs[m.group("kind")] = m.group("addr")
                    if all(k in self.addrs for k in NET_LISTENERS):
                        self._found.set()
        self._found.set()  # EOF: the node exited; wake the waiter

    def tail(self, n: int = 60) -> str:
        return "".join(self.lines[-n:]) or "(no output)"

    def wait_listening(self) -> dict[str, str]:
        if not self._found.wait(NODE_START_TIMEOUT_S) or not all(k in self.addrs for k in NET_LISTENERS):
            rc = self.proc.poll()
            self.kill()
            want = " and ".join(f"`listening {k}=ADDR`" for k in NET_LISTENERS)
            raise RuntimeError(
                f"`{' '.join(self.argv)}` did not log {want} within {NODE_START_TIMEOUT_S}s "
                f"(exit code {rc}); its output:\n{self.tail()}"
            )
        return self.addrs

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int | None:
        """SIGTERM, then wait; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(NODE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self._reader.join(5)
        return rc


@pytest.fixture(scope="session")
def net_node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    node = NetNode(tmp_path_factory.mktemp("net-node") / "node.log")
    try:
        node.wait_listening()
        yield node
    finally:
        alive_before_stop = node.proc.poll() is None
        rc = node.stop()
    assert alive_before_stop, f"the net node died during the tests (exit code {rc}); its output:\n{node.tail()}"
    assert rc == 0, (
        f"the net node did not exit 0 within {NODE_STOP_TIMEOUT_S}s of SIGTERM (exit code {rc}, None = killed); "
        f"its output:\n{node.tail()}"
    )


# ---------------------------------------------------------------------------------------------
# Connections and sessions

COMBOS = [("stdio", "legacy"), ("stdio", "auto"), ("tcp", "legacy"), ("tcp", "auto"), ("http", "legacy")]


@dataclass
class Conn:
    """How to reach a server: the command the SDK launches (or the URL), the client mode, and what
    to expect."""

    transport: str  # "stdio" | "tcp" | "http"
    mode: str  # "legacy" | "auto"
    params: StdioServerParameters | None  # stdio, tcp
    url: str | None  # http
    node_name: str
    item: pytest.Item
    tmp: Path
    _count: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def label(self) -> str:
        return f"{self.transport}-{self.mode}"

    @property
    def target(self) -> StdioServerParameters | str:
        """What an application passes to `mcp.Client(...)`."""
        target = self.url if self.transport == "http" else self.params
        assert target is not None
        return target

    @asynccontextmanager
    async def session(self, **client_kwargs: Any) -> AsyncIterator[Session]:
        """A connected `mcp.Client`, recorded (wire, HTTP exchanges, notifications, log messages)."""
        n = next(self._count)
        wire, notes, logs = Wire(), Inbox(), Inbox()
        http = HttpLog() if self.transport == "http" else None
        errpath = self.tmp / f"{self.label}-{n}.stderr"

        async def on_message(message: Any) -> None:
            notes.add(message)

        async def on_log(params: Any) -> None:
            logs.add(params)

        self.item.stash.setdefault(SESSIONS_KEY, []).append((f"session {self.label} #{n}", wire, http, errpath))
        with open(errpath, "w") as errlog:
            if http is not None:
                assert self.url is not None
                transport: Any = tapped_http(self.url, wire, http)
            else:
                assert self.params is not None
                transport = tapped_stdio(self.params, wire, errlog)
            client = Client(
                transport,
                mode=self.mode,
                message_handler=on_message,
                logging_callback=on_log,
                read_timeout_seconds=WAIT_S,
                **client_kwargs,
            )
            with anyio.fail_after(TEST_TIMEOUT_S):
                async with client:
                    yield Session(client, wire, notes, logs, self, http)


@dataclass
class Session:
    client: Client
    wire: Wire
    notes: Inbox  # everything the SDK's message_handler received
    logs: Inbox  # LoggingMessageNotificationParams from logging_callback
    conn: Conn
    http: HttpLog | None = None  # every HTTP exchange (http connections only)

    @property
    def stateless(self) -> bool:
        """Whether the client negotiated a stateless revision (2026-07-28: no session)."""
        return self.client.protocol_version in MODERN_PROTOCOL_VERSIONS

    async def wait_in_hand(self, request: WireMsg) -> None:
        """Returns once the server has the request `request` in hand (it is running)."""
        if self.http is not None and self.stateless:
            # 2026-07-28: the server answers nothing before the result (or a first notification),
            # so the request having gone out on a POST of its own is all a client can see.
            await self.http.wait_for(
                lambda x: x.method == "POST" and x.request_id == request.id,
                what=f"the POST carrying request {request.id!r}",
            )
            return
        if self.http is not None:
            # 2025-11-25: each request has a POST of its own, and the server is working on it once
            # it answered the POST's headers (a request's SSE stream starts before its response).
            await self.http.wait_for(
                lambda x: x.method == "POST" and x.request_id == request.id and x.status is not None,
                what=f"the response headers of the POST carrying request {request.id!r}",
            )
            return
        # One ordered stream: a round trip after the request means the server has it.
        r = await self.client.call_tool("echo", {"text": "in hand"})
        assert not r.is_error and r.structured_content == {"text": "in hand"}, r


SESSIONS_KEY = pytest.StashKey[list]()


def make_conn(request: pytest.FixtureRequest, tmp_path: Path, transport: str, mode: str) -> Conn:
    if not os.access(ERLMCP_BIN, os.X_OK):
        pytest.fail(f"erlmcp binary not found at {ERLMCP_BIN} (build it: cargo build -p erlmcp-node)")
    env = {"RUST_BACKTRACE": "1", "NO_COLOR": "1"}
    params, url = None, None
    if transport == "stdio":
        params = StdioServerParameters(
            command=ERLMCP_BIN, args=["node", "--stdio", "--name", STDIO_NODE_NAME], env=env
        )
        node_name = STDIO_NODE_NAME
    else:
        node: NetNode = request.getfixturevalue("net_node")
        if transport == "tcp":
            params = StdioServerParameters(command=ERLMCP_BIN, args=["connect", f"tcp://{node.addr}"], env=env)
        else:
            url = node.http_url
        node_name = NET_NODE_NAME
        request.node.stash.setdefault(SESSIONS_KEY, []).append(
            ("the net node (whole pytest session)", None, None, node.log_path)
        )
    return Conn(transport, mode, params, url, node_name, request.node, tmp_path)


@pytest.fixture(params=COMBOS, ids=[f"{t}-{m}" for t, m in COMBOS])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Conn:
    transport, mode = request.param
    return make_conn(request, tmp_path, transport, mode)


@pytest.fixture
def http_legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Conn:
    """The net node over Streamable HTTP, `mode="legacy"` (a 2025-11-25 session)."""
    return make_conn(request, tmp_path, "http", "legacy")


@pytest.fixture
def http_auto(request: pytest.FixtureRequest, tmp_path: Path) -> Conn:
    """The net node over Streamable HTTP, the SDK's default `mode="auto"`."""
    return make_conn(request, tmp_path, "http", "auto")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """On failure, show each session's JSON-RPC exchange, its HTTP exchanges, and the launched
    process's stderr (or the node's log)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for label, wire, http, errpath in item.stash.get(SESSIONS_KEY, []):
        if wire is not None:
            report.sections.append(
                (f"JSON-RPC wire, {label} (-> client to server, <- server to client)", wire.dump())
            )
        if http is not None:
            report.sections.append((f"HTTP exchanges, {label}", http.dump()))
            continue  # no process of its own: the node's log is its own section
        try:
            err = Path(errpath).read_text(errors="replace")[-6000:]
        except OSError:
            err = "(unreadable)"
        report.sections.append((f"stderr of {label}", err or "(empty)"))
