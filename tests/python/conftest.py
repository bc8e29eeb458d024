"""Fixtures for driving erlmcp with the official Python MCP SDK (`mcp` 2.3.0).

Each test runs against four connections (`conn` fixture):

* ``stdio-legacy`` / ``stdio-auto``: the SDK launches ``erlmcp node --stdio`` itself;
* ``tcp-legacy`` / ``tcp-auto``: one ``erlmcp node --tcp 127.0.0.1:0`` per pytest session, reached
  through the stdio bridge ``erlmcp connect tcp://127.0.0.1:PORT`` that the SDK launches.

``legacy`` is ``mcp.Client(..., mode="legacy")`` (initialize handshake); ``auto`` is the SDK's
default, which first sends ``server/discover`` and must fall back to ``initialize`` on the error.

Every session records the JSON-RPC messages both ways (a tap between the SDK's stdio transport and
its session) and the launched process's stderr; a failing test prints both, so a server bug shows
up as the exact exchange.
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
from mcp import Client, StdioServerParameters, stdio_client
from mcp.shared.message import SessionMessage

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
TCP_NODE_NAME = "pytest-tcp@127.0.0.1"

# The node logs its bound listener address, e.g. `... listening tcp=127.0.0.1:40123 admin=...`.
LISTEN_RE = re.compile(r"listening.*?\btcp=\"?(?:tcp://)?(?P<addr>\d+\.\d+\.\d+\.\d+:\d+)")


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
# The TCP node (one per pytest session)


class TcpNode:
    """`erlmcp node --tcp 127.0.0.1:0 --admin 127.0.0.1:0` as a subprocess."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.lines: list[str] = []
        self.addr: str | None = None
        self._found = threading.Event()
        self.argv = [
            ERLMCP_BIN, "node", "--name", TCP_NODE_NAME, "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0",
            "--admin", "127.0.0.1:0",
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

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:
                self.lines.append(line)
                log.write(line)
                log.flush()
                if self.addr is None and (m := LISTEN_RE.search(line)):
                    self.addr = m.group("addr")
                    self._found.set()
        self._found.set()  # EOF: the node exited; wake the waiter

    def tail(self, n: int = 60) -> str:
        return "".join(self.lines[-n:]) or "(no output)"

    def wait_listening(self) -> str:
        if not self._found.wait(NODE_START_TIMEOUT_S) or self.addr is None:
            rc = self.proc.poll()
            self.kill()
            raise RuntimeError(
                f"`{' '.join(self.argv)}` did not log `listening tcp=ADDR` within {NODE_START_TIMEOUT_S}s "
                f"(exit code {rc}); its output:\n{self.tail()}"
            )
        return self.addr

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
def tcp_node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    node = TcpNode(tmp_path_factory.mktemp("tcp-node") / "node.log")
    try:
        node.wait_listening()
        yield node
    finally:
        alive_before_stop = node.proc.poll() is None
        rc = node.stop()
    assert alive_before_stop, f"the TCP node died during the tests (exit code {rc}); its output:\n{node.tail()}"
    assert rc == 0, (
        f"the TCP node did not exit 0 within {NODE_STOP_TIMEOUT_S}s of SIGTERM (exit code {rc}, None = killed); "
        f"its output:\n{node.tail()}"
    )


# ---------------------------------------------------------------------------------------------
# Connections and sessions

COMBOS = [("stdio", "legacy"), ("stdio", "auto"), ("tcp", "legacy"), ("tcp", "auto")]


@dataclass
class Conn:
    """How to reach a server: the command the SDK launches, the client mode, and what to expect."""

    transport: str  # "stdio" | "tcp"
    mode: str  # "legacy" | "auto"
    params: StdioServerParameters
    node_name: str
    item: pytest.Item
    tmp: Path
    _count: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def label(self) -> str:
        return f"{self.transport}-{self.mode}"

    @asynccontextmanager
    async def session(self, **client_kwargs: Any) -> AsyncIterator[Session]:
        """An initialized `mcp.Client` session, recorded (wire, notifications, log messages)."""
        n = next(self._count)
        wire, notes, logs = Wire(), Inbox(), Inbox()
        errpath = self.tmp / f"{self.label}-{n}.stderr"

        async def on_message(message: Any) -> None:
            notes.add(message)

        async def on_log(params: Any) -> None:
            logs.add(params)

        self.item.stash.setdefault(SESSIONS_KEY, []).append((f"session {self.label} #{n}", wire, errpath))
        with open(errpath, "w") as errlog:
            client = Client(
                tapped_stdio(self.params, wire, errlog),
                mode=self.mode,
                message_handler=on_message,
                logging_callback=on_log,
                read_timeout_seconds=WAIT_S,
                **client_kwargs,
            )
            with anyio.fail_after(TEST_TIMEOUT_S):
                async with client:
                    yield Session(client, wire, notes, logs, self)


@dataclass
class Session:
    client: Client
    wire: Wire
    notes: Inbox  # everything the SDK's message_handler received
    logs: Inbox  # LoggingMessageNotificationParams from logging_callback
    conn: Conn


SESSIONS_KEY = pytest.StashKey[list]()


@pytest.fixture(params=COMBOS, ids=[f"{t}-{m}" for t, m in COMBOS])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Conn:
    transport, mode = request.param
    if not os.access(ERLMCP_BIN, os.X_OK):
        pytest.fail(f"erlmcp binary not found at {ERLMCP_BIN} (build it: cargo build -p erlmcp-node)")
    env = {"RUST_BACKTRACE": "1", "NO_COLOR": "1"}
    if transport == "stdio":
        params = StdioServerParameters(
            command=ERLMCP_BIN, args=["node", "--stdio", "--name", STDIO_NODE_NAME], env=env
        )
        node_name = STDIO_NODE_NAME
    else:
        node: TcpNode = request.getfixturevalue("tcp_node")
        params = StdioServerParameters(command=ERLMCP_BIN, args=["connect", f"tcp://{node.addr}"], env=env)
        node_name = TCP_NODE_NAME
        request.node.stash.setdefault(SESSIONS_KEY, []).append(("the TCP node (whole pytest session)", None, node.log_path))
    return Conn(transport, mode, params, node_name, request.node, tmp_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """On failure, show each session's JSON-RPC exchange and the launched process's stderr."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for label, wire, errpath in item.stash.get(SESSIONS_KEY, []):
        if wire is not None:
            report.sections.append(
                (f"JSON-RPC wire, {label} (-> client to server, <- server to client)", wire.dump())
            )
        try:
            err = Path(errpath).read_text(errors="replace")[-6000:]
        except OSError:
            err = "(unreadable)"
        report.sections.append((f"stderr of {label}", err or "(empty)"))
