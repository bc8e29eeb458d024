#!/usr/bin/env bash
# Side-by-side MCP Streamable HTTP benchmark: the erlmcp node against `rmcp-echo` (the same `echo`
# tool on the official Rust SDK), with the same load generator, in one invocation, on both
# revisions: 2025-11-25 sessions (CONFIGS) and 2026-07-28 stateless requests (STATELESS_CONFIGS).
#
# Each load run starts a fresh server pinned to one core (SERVER_CPU, default 0) and runs
# `erlmcp-load --target http://…/mcp` pinned to the other (LOAD_CPU, default 1), one server at a
# time, alternating servers for each configuration so drift on a shared machine hits both alike.
# Then idle memory per session: a fresh server, N sessions opened with the handshake only
# (`--open-only`: connections closed afterwards, nothing else sent), RSS from /proc/PID/statm
# before and after; for erlmcp also after passivation (`[engine] passivate_after_ms = 500`,
# waiting on `/admin/stats` until no session is live).
#
#   bench/compare-http.sh                      # build, 10 s runs at 16x1, 64x1, 64x4 (sessions),
#                                              # 16x1, 64x1 (stateless), memory
#   DURATION=5s ROUNDS=3 bench/compare-http.sh # three alternating rounds, medians in the table
#
# Environment: DURATION (10s), WARMUP (1s), ROUNDS (1), CONFIGS ("16x1 64x1 64x4": sessions x
# concurrency), STATELESS_CONFIGS ("16x1 64x1": clients x concurrency, revision 2026-07-28; ""
# skips them), IDLE_SESSIONS (2000; 0 skips memory), PORT_BASE (17500: four ports from it),
# SERVER_CPU (0), LOAD_CPU (1), SKIP_BUILD (unset), RESULTS_DIR (a fresh /tmp directory),
# CARGO_TARGET_DIR. Needs taskset, curl, jq, python3; gdb (optional) adds RSS after malloc_trim.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-1}
CONFIGS=${CONFIGS-"16x1 64x1 64x4"}
STATELESS_CONFIGS=${STATELESS_CONFIGS-"16x1 64x1"}
IDLE_SESSIONS=${IDLE_SESSIONS:-2000}
WARM_SESSIONS=200
PORT_BASE=${PORT_BASE:-17500}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=${RESULTS_DIR:-$(mktemp -d /tmp/compare-http.XXXXXX)}
mkdir -p "$OUT"

ERL_HTTP=$PORT_BASE
ERL_TCP=$((PORT_BASE + 1))
ERL_ADMIN=$((PORT_BASE + 2))
RMCP_HTTP=$((PORT_BASE + 3))
ERL_URL=http://127.0.0.1:$ERL_HTTP/mcp
RMCP_URL=http://127.0.0.1:$RMCP_HTTP/mcp
PAGE_KIB=$(($(getconf PAGESIZE) / 1024))

for tool in taskset curl jq python3; do
    command -v "$tool" >/dev/null || { echo "compare-http: needs $tool" >&2; exit 2; }
done
for p in "$ERL_HTTP" "$ERL_TCP" "$ERL_ADMIN" "$RMCP_HTTP"; do
    if ss -Hltn "sport = :$p" | grep -q .; then
        echo "compare-http: port $p is in use (set PORT_BASE)" >&2
        exit 2
    fi
done

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== building (release)" >&2
    cargo build --release -p erlmcp-node -p erlmcp-bench --features erlmcp-bench/rmcp --bins >&2
fi

cat >"$OUT/erlmcp-load.toml" <<EOF
http = "127.0.0.1:$ERL_HTTP"
tcp = "127.0.0.1:$ERL_TCP"
admin = "127.0.0.1:$ERL_ADMIN"
EOF
cp "$OUT/erlmcp-load.toml" "$OUT/erlmcp-passivate.toml"
printf '\n[engine]\npassivate_after_ms = 500\n' >>"$OUT/erlmcp-passivate.toml"

SERVER_PID=
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

wait_port() {
    for _ in $(seq 200); do
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "compare-http: server exited; log: $2" >&2; tail -5 "$2" >&2; exit 1; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "compare-http: nothing listens on port $1 after 10 s" >&2
    exit 1
}

# start_server erlmcp|rmcp [config]
start_server() {
    local log=$OUT/$1.log
    case $1 in
        erlmcp)
            taskset -c "$SERVER_CPU" "$BIN/erlmcp" node --config "$2" >>"$log" 2>&1 &
            SERVER_PID=$!
            wait_port "$ERL_HTTP" "$log"
            wait_port "$ERL_ADMIN" "$log"
            ;;
        rmcp)
            taskset -c "$SERVER_CPU" "$BIN/rmcp-echo" --listen "127.0.0.1:$RMCP_HTTP" >>"$log" 2>&1 &
            SERVER_PID=$!
            wait_port "$RMCP_HTTP" "$log"
            ;;
    esac
}

url_of() { if [ "$1" = erlmcp ]; then echo "$ERL_URL"; else echo "$RMCP_URL"; fi; }
rss_kib() { echo $(($(awk '{print $2}' "/proc/$SERVER_PID/statm") * PAGE_KIB)); }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# The baseline: RSS after malloc_trim when gdb can do it, so later readings compare to a heap
# without free pages.
base_rss_kib() {
    local t
    t=$(trimmed_rss_kib)
    if [ "$t" = null ]; then rss_kib; else echo "$t"; fi
}

# RSS after glibc's malloc_trim(0) in the server (freed heap pages returned), through gdb when
# it is installed; "null" otherwise.
trimmed_rss_kib() {
    if command -v gdb >/dev/null; then
        gdb -p "$SERVER_PID" -batch -ex 'call (int) malloc_trim(0)' >/dev/null 2>&1 || true
        rss_kib
    else
        echo null
    fi
}

live_sessions() {
    curl -sf "http://127.0.0.1:$ERL_ADMIN/admin/stats" | jq -r '.sessions.live // "?"'
}

# Waits (at most 60 s) until erlmcp reports no live session actor.
wait_passivated() {
    local live=?
    for _ in $(seq 240); do
        live=$(live_sessions || echo "?")
        [ "$live" = 0 ] && return 0
        sleep 0.25
    done
    echo "compare-http: sessions still live after 60 s: $live" >&2
    return 1
}

open_idle() {
    taskset -c "$LOAD_CPU" "$BIN/erlmcp-load" --target "$(url_of "$1")" --sessions "$2" \
        --open-only --json --quiet >>"$OUT/open.jsonl"
}

run_load() { # server sessions concurrency round revision
    local file=$OUT/load-$1-$5-$2x$3-r$4.json la
    la=$(loadavg)
    taskset -c "$LOAD_CPU" "$BIN/erlmcp-load" --target "$(url_of "$1")" --sessions "$2" \
        --concurrency "$3" --duration "$DURATION" --warmup "$WARMUP" --revision "$5" \
        --server-pid "$SERVER_PID" --json --quiet >"$file"
    jq -c --arg s "$1" --arg la "$la" --argjson r "$4" \
        '. + {server: $s, loadavg: ($la | tonumber), round: $r}' "$file" >>"$OUT/results.jsonl"
    jq -r --arg s "$1" '"   \($s) \(.revision) \(.sessions)x\(.concurrency): \(.requests_per_s | floor) req/s, p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us, errors \(.errors.total)"' "$file" >&2
}

echo "== results in $OUT; $(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$OUT/results.jsonl"
: >"$OUT/memory.jsonl"

for round in $(seq "$ROUNDS"); do
    for revision in 2025-11-25 2026-07-28; do
        if [ "$revision" = 2025-11-25 ]; then configs=$CONFIGS; else configs=$STATELESS_CONFIGS; fi
        for cfg in $configs; do
            s=${cfg%x*}
            c=${cfg#*x}
            for server in erlmcp rmcp; do
                start_server "$server" "$OUT/erlmcp-load.toml"
                run_load "$server" "$s" "$c" "$round" "$revision"
                stop_server
            done
        done
    done
done

if [ "$IDLE_SESSIONS" -gt 0 ]; then
    n=$IDLE_SESSIONS
    echo "== idle memory: $n sessions (after $WARM_SESSIONS warm-up sessions)" >&2
    for server in rmcp erlmcp; do
        # Active sessions (erlmcp: default passivate_after, 30 s).
        start_server "$server" "$OUT/erlmcp-load.toml"
        open_idle "$server" "$WARM_SESSIONS"
        sleep 1
        base=$(base_rss_kib)
        open_idle "$server" "$n"
        sleep 1
        active=$(rss_kib)
        trimmed=$(trimmed_rss_kib)
        stop_server
        line=$(jq -nc --arg s "$server" --argjson n "$n" --argjson b "$base" --argjson a "$active" \
            --argjson t "$trimmed" \
            '{server: $s, sessions: $n, base_kib: $b, active_kib: $a, active_trimmed_kib: $t,
              active_bytes_per_session: ((($a - $b) * 1024 / $n) | floor)}')
        if [ "$server" = erlmcp ]; then
            # Passivated: a second node with passivate_after_ms = 500.
            start_server erlmcp "$OUT/erlmcp-passivate.toml"
            open_idle erlmcp "$WARM_SESSIONS"
            wait_passivated
            sleep 1
            base=$(base_rss_kib)
            open_idle erlmcp "$n"
            peak=$(rss_kib)
            wait_passivated
            sleep 1
            passive1=$(rss_kib)
            # A second and a third batch reuse what the first one freed: the marginal cost of a
            # passivated session once the allocator holds freed pages.
            open_idle erlmcp "$n"
            wait_passivated
            sleep 1
            passive2=$(rss_kib)
            open_idle erlmcp "$n"
            wait_passivated
            sleep 1
            passive3=$(rss_kib)
            stats=$(curl -sf "http://127.0.0.1:$ERL_ADMIN/admin/stats" | jq -c .sessions)
            trimmed=$(trimmed_rss_kib)
            stop_server
            line=$(echo "$line" | jq -c --argjson b "$base" --argjson p "$peak" --argjson p1 "$passive1" \
                --argjson p2 "$passive2" --argjson p3 "$passive3" --argjson n "$n" --argjson st "$stats" \
                --argjson t "$trimmed" \
                '. + {passivate_base_kib: $b, passivate_peak_kib: $p, passivated_kib: $p1, passivated2_kib: $p2,
                      passivated3_kib: $p3, passivated_trimmed_kib: $t,
                      passivated_bytes_per_session: ((($p1 - $b) * 1024 / $n) | floor),
                      passivated_marginal_bytes_per_session: ((($p2 - $p1) * 1024 / $n) | floor),
                      passivated_marginal3_bytes_per_session: ((($p3 - $p2) * 1024 / $n) | floor),
                      passivated_overall_bytes_per_session: ((($p3 - $b) * 1024 / (3 * $n)) | floor),
                      passivated_trimmed_bytes_per_session:
                        (if $t == null then null else ((($t - $b) * 1024 / (3 * $n)) | floor) end),
                      stats_after: $st}')
        fi
        echo "$line" >>"$OUT/memory.jsonl"
        echo "   $line" >&2
    done
fi

echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$OUT" <<'EOF'
import json, os, statistics, sys

out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "results.jsonl")) if l.strip()]
if not rows:
    rows = []
mem = [json.loads(l) for l in open(os.path.join(out, "memory.jsonl")) if l.strip()]

def med(xs):
    return statistics.median(xs) if xs else float("nan")

groups = {}
for r in rows:
    groups.setdefault((r.get("revision", "2025-11-25"), r["sessions"], r["concurrency"], r["server"]), []).append(r)

if rows:
    print(f"\nMCP Streamable HTTP, tools/call echo; server pinned to one core, erlmcp-load to the other; "
          f"{rows[0]['duration_s']:.0f} s runs" + (f", median of {len(rows) // len(groups)} rounds" if len(rows) > len(groups) else ""))
print()
multi = len(rows) > len(groups)
hdr = f"{'server':<7} {'revision':<10} {'sessions':>9} {'req/s':>8} {'p50 us':>8} {'p99 us':>8} {'srv us/req':>10} {'srv CPU':>7} {'errors':>6} {'runq ms/s srv/cli':>17} {'load':>5}" + ("  req/s range" if multi else "")
print(hdr)
print("-" * len(hdr))
summary = {}
for (rev, s, c, server) in sorted(groups, key=lambda k: (k[0], k[1] * k[2], k[1], k[3] != "erlmcp")):
    g = groups[(rev, s, c, server)]
    rps = med([r["requests_per_s"] for r in g])
    p50 = med([r["latency_us"]["p50"] for r in g])
    p99 = med([r["latency_us"]["p99"] for r in g])
    srv = med([r["server_cpu"]["us_per_request"] for r in g])
    el = med([r["elapsed_s"] for r in g])
    util = med([(r["server_cpu"]["user_s"] + r["server_cpu"]["sys_s"]) / r["elapsed_s"] for r in g])
    errs = sum(r["errors"]["total"] for r in g)
    wait_s = med([r["server_cpu"]["runq_wait_s"] * 1000 / r["elapsed_s"] for r in g])
    wait_c = med([r["client_cpu"]["runq_wait_s"] * 1000 / r["elapsed_s"] for r in g])
    la = med([r["loadavg"] for r in g])
    summary[(rev, s, c, server)] = (rps, p99)
    spread = ""
    if multi:
        xs = [r["requests_per_s"] for r in g]
        spread = f"  {min(xs):.0f}-{max(xs):.0f}"
    print(f"{server:<7} {rev:<10} {f'{s}x{c}':>9} {rps:>8.0f} {p50:>8.0f} {p99:>8.0f} {srv:>10.1f} {util:>6.0%} {errs:>6} {f'{wait_s:.0f}/{wait_c:.0f}':>17} {la:>5.2f}{spread}")
print()
by_round = {(r.get("revision", "2025-11-25"), r["sessions"], r["concurrency"], r["server"], r["round"]): r for r in rows}
for (rev, s, c) in sorted({(k[0], k[1], k[2]) for k in summary}, key=lambda k: (k[0], k[1] * k[2], k[1])):
    e, r = summary.get((rev, s, c, "erlmcp")), summary.get((rev, s, c, "rmcp"))
    if e and r:
        line = f"erlmcp/rmcp, {rev} at {s}x{c}: {e[0] / r[0]:.2f}x req/s (goal >= 2), p99 {e[1]:.0f} vs {r[1]:.0f} us ({e[1] / r[1]:.2f}x; goal < 1)"
        # Each round ran erlmcp and rmcp back to back: the ratio within a round is less exposed to drift.
        paired = [by_round[(rev, s, c, "erlmcp", n)]["requests_per_s"] / by_round[(rev, s, c, "rmcp", n)]["requests_per_s"]
                  for (rv, s2, c2, sv, n) in by_round if (rv, s2, c2, sv) == (rev, s, c, "erlmcp") and (rev, s, c, "rmcp", n) in by_round]
        if len(paired) > 1:
            line += f"; per round {', '.join(f'{x:.2f}' for x in sorted(paired))}"
        print(line)
if mem:
    print()
    for m in mem:
        line = f"idle memory, {m['server']}: {m['sessions']} sessions, {m['active_bytes_per_session']} B per session"
        if "passivated_bytes_per_session" in m:
            line += (f"; after passivation {m['passivated_bytes_per_session']} B per session"
                     f" (a second batch adds {m['passivated_marginal_bytes_per_session']} B per session,"
                     f" a third {m.get('passivated_marginal3_bytes_per_session')} B;"
                     f" all three batches {m.get('passivated_overall_bytes_per_session')} B per session")
            if m.get("passivated_trimmed_bytes_per_session") is not None:
                line += f"; after malloc_trim: {m['passivated_trimmed_bytes_per_session']} B per session"
            line += "; goal <= 2048)"
        print(line)
print(f"\nraw results: {out}")
EOF
