#!/usr/bin/env bash
# Runs the Python SDK tests: the official `mcp` client (pinned in requirements.txt) drives
# `erlmcp node --stdio` and a TCP node through `erlmcp connect`.
#
#   tests/python/run.sh [pytest args...]      e.g. tests/python/run.sh -k cancel -x
#
# Creates a venv in target/py-venv (installs python3-venv with apt-get when venv creation fails
# and we are root), installs requirements.txt, builds the binary with `cargo build -p erlmcp-node`
# (a no-op when it is up to date; skipped when ERLMCP_BIN names a binary), and runs pytest.
# Exits with pytest's status.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

VENV="$ROOT/target/py-venv"
PY="$VENV/bin/python"
REQS="$HERE/requirements.txt"

as_root_apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
  else
    echo "error: cannot install $* (not root, or no apt-get); install it and rerun" >&2
    exit 2
  fi
}

if ! command -v python3 >/dev/null 2>&1; then
  as_root_apt_install python3 python3-venv
fi

# A usable venv has a python that can run pip; anything else is rebuilt.
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  echo "== creating venv $VENV"
  rm -rf "$VENV"
  mkdir -p "$ROOT/target"
  if ! python3 -m venv "$VENV"; then
    rm -rf "$VENV"
    as_root_apt_install python3-venv
    python3 -m venv "$VENV"
  fi
fi

# Reinstall only when requirements.txt changed.
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "== pip install -r tests/python/requirements.txt"
  "$PY" -m pip install --disable-pip-version-check -q -r "$REQS"
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
# No __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1

echo "== pytest tests/python (mcp $("$PY" -c 'import importlib.metadata as m; print(m.version("mcp"))'), $ERLMCP_BIN)"
cd "$HERE"
exec "$PY" -m pytest -c "$HERE/pytest.ini" --rootdir "$HERE" -o cache_dir="$ROOT/target/pytest-cache" "$@"
