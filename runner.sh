#!/usr/bin/env bash
# One entry point for users and CI.
#   ./runner.sh                        install what is missing, then start the server
#   ./runner.sh test                   install what is missing, then run every test
#   ./runner.sh setup                  only install (idempotent; fast when nothing is missing)
#   ./runner.sh make-demo-models DIR   write tiny random-weight models and DIR/modes.yaml
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
VENV=sidecar/.venv
PY=$VENV/bin/python
GATEWAY_MAIN=dist/apps/gateway/main.js
GRPCURL_VERSION=v1.9.4
# The Node the project is built, tested and shipped on (docker/gateway.Dockerfile: node:24-slim). A system Node
# that satisfies package.json's engines is used as it is; otherwise this one is installed into .node/.
PRIVATE_NODE_VERSION=24.22.3
# The registry's node-linux-* packages carry only the binary: add the npm that Node's own build of that version
# bundles (its CHANGELOG says which), so npm is the one Node 24 is tested with, whatever npm the system has.
PRIVATE_NPM_VERSION=11.19.1
PRIVATE_NODE=.node

say() { printf '[runner] %s\n' "$*" >&2; }

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Exit status 0 when `node` on PATH satisfies package.json's engines.node. Written for any old Node, and reading
# only the two range forms package.json uses (^X.Y.Z, >=X.Y.Z, joined by ||), so it needs no semver package.
node_fits_engines() {
  command -v node >/dev/null && node -e '
    var range = require("./package.json").engines.node;
    var v = process.versions.node.split(".").map(Number);
    function atLeast(min) { return v[0] - min[0] || v[1] - min[1] || v[2] - min[2]; }
    process.exit(range.split("||").some(function (term) {
      var m = term.trim().match(/^(\^|>=)(\d+)\.(\d+)\.(\d+)$/);
      if (!m) { console.error("[runner] cannot read engines.node term: " + term); process.exit(2); }
      var min = m.slice(2).map(Number);
      return atLeast(min) >= 0 && (m[1] === ">=" || v[0] === min[0]);
    }) ? 0 : 1);'
}

engines_node() { sed -n 's/^ *"node": *"\(.*\)".*/\1/p' package.json | head -n1; }

# npm pack fetches through the user's npm config (registry, proxy) and checks the registry's integrity hash.
unpack_npm_package() {
  local spec=$1 dest=$2 tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  mkdir -p "$dest"
  tar -xzf "$tmp"/*.tgz -C "$dest" --strip-components=1
  rm -rf "$tmp"
}

install_private_node() {
  local arch
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) arch=x64 ;;
    Linux-aarch64 | Linux-arm64) arch=arm64 ;;
    *) say "no private Node for $(uname -s) $(uname -m): install Node $PRIVATE_NODE_VERSION yourself"; exit 1 ;;
  esac
  command -v npm >/dev/null ||
    { say "Node.js $PRIVATE_NODE_VERSION is needed, and npm to fetch it: install either, then run me again"; exit 1; }
  # Built aside and moved in whole, so an interrupted download never leaves a half Node that looks installed.
  local tmp=$PRIVATE_NODE.partial
  rm -rf "$tmp"
  # bin/node, plus include/ (headers for native add-ons) and share/ (man page), as in Node's own tarball.
  unpack_npm_package "node-linux-$arch@$PRIVATE_NODE_VERSION" "$tmp"
  unpack_npm_package "npm@$PRIVATE_NPM_VERSION" "$tmp/lib/node_modules/npm"
  # The layout of Node's official tarball: npm finds its global prefix from node's path.
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/bin/npx"
  rm -rf "$PRIVATE_NODE"
  mv "$tmp" "$PRIVATE_NODE"
}

# Puts a Node that satisfies package.json's engines first on PATH, for npm, the build, the server and every
# process the tests and benches start (they run `node` from PATH or their own process.execPath).
use_node() {
  if [ -x "$PRIVATE_NODE/bin/node" ] && [ "$("$PRIVATE_NODE/bin/node" --version)" = "v$PRIVATE_NODE_VERSION" ]; then
    export PATH=$ROOT/$PRIVATE_NODE/bin:$PATH
  elif ! node_fits_engines; then
    say "system Node $(node --version 2>/dev/null || echo '(none)') does not meet package.json's engines ($(engines_node)): installing Node v$PRIVATE_NODE_VERSION for this project in $PRIVATE_NODE/ (a 55 MB download, once)"
    install_private_node
    export PATH=$ROOT/$PRIVATE_NODE/bin:$PATH
  fi
}

setup_node() {
  local want
  want=$(stamp_of package-lock.json)
  if [ "$(cat node_modules/.runner-stamp 2>/dev/null)" != "$want" ]; then
    say "installing npm packages (npm ci): about 230 MB in node_modules, usually under two minutes"
    npm ci --no-audit --no-fund --progress=true
    echo "$want" > node_modules/.runner-stamp
  fi
}

setup_python() {
  local base
  base=$(command -v python3.11 || command -v python3)
  "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { say "Python 3.11 or newer is required (found $("$base" --version))"; exit 1; }
  if [ ! -x "$PY" ]; then
    say "creating the sidecar virtualenv at $VENV"
    "$base" -m venv "$VENV"
  fi
  local want
  want=$(stamp_of sidecar/requirements.lock sidecar/pyproject.toml)
  if [ "$(cat "$VENV/.runner-stamp" 2>/dev/null)" != "$want" ]; then
    if [ ! -f "$VENV/.runner-stamp" ]; then
      say "first install of the model host's Python packages: about 6 GB in $VENV, most of it torch and"
      say "its CUDA libraries (a download of about 3 GB); 5 to 15 minutes on a good connection. pip shows each"
      say "download with its progress below."
    else
      say "updating the model host's Python packages (sidecar/requirements.lock changed)"
    fi
    "$PY" -m pip install --progress-bar on -r sidecar/requirements.lock
    "$PY" -m pip install --no-deps -e sidecar
    echo "$want" > "$VENV/.runner-stamp"
  fi
}

build_gateway() {
  # Rebuild only when a source is newer than the build.
  if [ ! -f "$GATEWAY_MAIN" ] ||
    [ -n "$(find apps proto tsconfig*.json nest-cli.json package.json -newer "$GATEWAY_MAIN" -type f -print -quit)" ]; then
    say "building the gateway"
    npm run --silent build
  fi
}

setup() {
  use_node
  setup_node
  setup_python
}

make_demo_models() {
  HF_HUB_OFFLINE=1 "$PY" -m modelhost make-demo-models "$1"
}

start() {
  setup
  build_gateway
  export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
  if [ -z "${MODES_FILE:-}" ] && [ ! -f modes.yaml ] && { [ -z "${MODEL_ROOT:-}" ] || [ -z "${MODEL:-}" ]; }; then
    if [ ! -f .demo/modes.yaml ]; then
      say "making the tiny demo models in .demo/"
      make_demo_models .demo
    fi
    export MODES_FILE=$ROOT/.demo/modes.yaml
    say "no modes.yaml: serving the tiny DEMO models (random weights) from .demo/modes.yaml"
    say "copy modes.yaml.example to modes.yaml and point it at your checkpoints to serve real models"
  fi
  exec node "$GATEWAY_MAIN"
}

# Test-only tools, installed when missing and when this machine lets us; the tests that need them skip, saying so,
# where they are absent.
setup_test_tools() {
  if ! command -v docker-compose >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing docker-compose (Debian's package) for the docker-compose.yml checks"
    # A machine whose package lists are missing or stale needs one update first.
    DEBIAN_FRONTEND=noninteractive apt-get install -y docker-compose ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y docker-compose; } ||
      say "could not install docker-compose: its test will be skipped"
  fi
  if ! command -v redis-server >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing redis-server (Debian's package) for the Redis queue backend's tests (each starts its own)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; } ||
      say "could not install redis-server: the Redis queue backend's tests will be skipped"
  fi
  if ! command -v grpcurl >/dev/null && command -v go >/dev/null &&
    [ ! -x "$(go env GOPATH)/bin/grpcurl" ]; then
    say "installing grpcurl $GRPCURL_VERSION with go install (a few minutes on two cores) for the grpcurl e2e test"
    go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  fi
}

run_tests() {
  # The test tools build (go) while npm and pip download: on a fresh machine that overlaps minutes of each.
  local tools_log tools
  tools_log=$(mktemp)
  setup_test_tools >"$tools_log" 2>&1 &
  tools=$!
  setup
  build_gateway
  wait "$tools" || say "installing the test tools failed: the tests that need them will skip, saying so"
  cat "$tools_log" >&2
  rm -f "$tools_log"
  export HF_HUB_OFFLINE=1
  say "lint and type check"
  npm run --silent lint
  npm run --silent typecheck
  (cd sidecar && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy)
  say "gateway unit tests"
  npm run --silent test
  say "sidecar tests"
  (cd sidecar && .venv/bin/python -m pytest -q)
  say "end-to-end tests"
  npm run --silent test:e2e
  say "all tests passed"
}

case "${1:-start}" in
  start) start ;;
  test) run_tests ;;
  setup) setup ;;
  make-demo-models)
    [ $# -eq 2 ] || { say "usage: ./runner.sh make-demo-models DIR"; exit 2; }
    setup_python
    make_demo_models "$2"
    ;;
  *)
    say "unknown command '$1' (use: start, test, setup, make-demo-models DIR)"
    exit 2
    ;;
esac
