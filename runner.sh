#!/usr/bin/env bash
# One entry point for users and CI.
#   ./runner.sh                        install what is missing, then start the server
#   ./runner.sh test                   install what is missing, then run every test
#   ./runner.sh setup                  only install (idempotent; fast when nothing is missing)
#   ./runner.sh make-demo-models DIR   write tiny random-weight models and DIR/modes.yaml
#   ./runner.sh images                 build both Docker images, tagged as docker-compose.yml names them
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
VENV=sidecar/.venv
PY=$VENV/bin/python
GATEWAY_MAIN=dist/apps/gateway/main.js
WEB_INDEX=dist/web/index.html
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

# Node $PRIVATE_NODE_VERSION and its npm in DEST, laid out as Node's official tarball (bin/, lib/, include/, share/).
unpack_node() {
  local dest=$1 arch
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) arch=x64 ;;
    Linux-aarch64 | Linux-arm64) arch=arm64 ;;
    *) say "no private Node for $(uname -s) $(uname -m): install Node $PRIVATE_NODE_VERSION yourself"; exit 1 ;;
  esac
  command -v npm >/dev/null ||
    { say "Node.js $PRIVATE_NODE_VERSION is needed, and npm to fetch it: install either, then run me again"; exit 1; }
  # bin/node, plus include/ (headers for native add-ons) and share/ (man page), as in Node's own tarball.
  unpack_npm_package "node-linux-$arch@$PRIVATE_NODE_VERSION" "$dest"
  unpack_npm_package "npm@$PRIVATE_NPM_VERSION" "$dest/lib/node_modules/npm"
  # The layout of Node's official tarball: npm finds its global prefix from node's path.
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dest/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dest/bin/npx"
}

install_private_node() {
  # Built aside and moved in whole, so an interrupted download never leaves a half Node that looks installed.
  local tmp=$PRIVATE_NODE.partial
  rm -rf "$tmp"
  unpack_node "$tmp"
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
  # Rebuild only when a source is newer than the build (the web page, apps/web, is among the sources).
  if [ ! -f "$GATEWAY_MAIN" ] || [ ! -f "$WEB_INDEX" ] ||
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
  local wanted=()
  command -v docker-compose >/dev/null || wanted+=(docker-compose)
  # The compose e2e builds the images, on stand-in bases made with debootstrap where no registry answers.
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || wanted+=(debootstrap)
  if [ ${#wanted[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing ${wanted[*]} (Debian's packages) for the docker-compose tests"
    # A machine whose package lists are missing or stale needs one update first.
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${wanted[@]}" ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${wanted[@]}"; } ||
      say "could not install ${wanted[*]}: the docker-compose tests will skip or fail, saying why"
  fi
  if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing chromium (Debian's package) for the web page's browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } ||
      say "could not install chromium: the web page's browser tests will be skipped"
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

# --- Docker images -------------------------------------------------------------------------------------------------
# The official bases the Dockerfiles name by default (what users pull), and the stand-ins made from Debian's
# packages where no image registry answers.
OFFICIAL_PYTHON_IMAGE=python:3.11-slim
OFFICIAL_NODE_IMAGE=node:24-slim
STAND_IN_DEBIAN=image-gen-server-stand-in/debian:bookworm
STAND_IN_PYTHON=image-gen-server-stand-in/python:3.11-slim
STAND_IN_NODE=image-gen-server-stand-in/node:$PRIVATE_NODE_VERSION-slim
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# The docker CLI that builds with BuildKit (cache mounts): one with the buildx plugin, or one older than 23.0, which
# speaks to the engine's own BuildKit. A CLI of 23.0 or newer without buildx refuses DOCKER_BUILDKIT=1.
docker_cli() {
  local cli major
  while read -r cli; do
    if "$cli" buildx version >/dev/null 2>&1; then echo "$cli"; return; fi
    major=$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1) || continue
    if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then echo "$cli"; return; fi
  done < <(type -ap docker)
  say "no docker CLI here builds with BuildKit: install the buildx plugin (docker-buildx) or Debian's docker.io"
  exit 1
}

# The `image:` of each service in docker-compose.yml, as "service image" lines.
compose_images() {
  # A service line may carry a YAML anchor (`model-host: &model-host`, which the scale-out services merge).
  awk '/^  [a-z0-9-]+:( &[a-z0-9-]+)?$/ { service = substr($1, 1, length($1) - 1) }
       /^    image: / && service != "" { print service, $2 }' docker-compose.yml
}

# Exit status 0 when IMAGE is here or can be pulled.
have_or_pull() {
  "$DOCKER" image inspect "$1" >/dev/null 2>&1 || timeout 300 "$DOCKER" pull -q "$1" >/dev/null 2>&1
}

# A Debian bookworm root from Debian's own packages (debootstrap), imported as an image, trusting the CA
# certificates this machine trusts (a TLS-inspecting proxy's included: the builds fetch from PyPI and npm).
make_stand_in_debian() {
  "$DOCKER" image inspect "$STAND_IN_DEBIAN" >/dev/null 2>&1 && return
  command -v debootstrap >/dev/null ||
    { say "making a stand-in base needs debootstrap (apt-get install debootstrap) and root"; exit 1; }
  local root
  root=$(mktemp -d /tmp/stand-in-root.XXXXXX)
  say "debootstrap: a minimal Debian bookworm from $DEBIAN_MIRROR (about 2 minutes)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$DEBIAN_MIRROR" >/dev/null
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "$DOCKER" import --change 'CMD ["bash"]' - "$STAND_IN_DEBIAN" >/dev/null
  rm -rf "$root"
}

make_stand_in_python() {
  "$DOCKER" image inspect "$STAND_IN_PYTHON" >/dev/null 2>&1 && return
  make_stand_in_debian
  say "building $STAND_IN_PYTHON: Debian's python3.11 and pip"
  "$DOCKER" build -q --build-arg DEBIAN_IMAGE="$STAND_IN_DEBIAN" -t "$STAND_IN_PYTHON" \
    -f docker/stand-in/python.Dockerfile docker/stand-in >/dev/null
}

make_stand_in_node() {
  "$DOCKER" image inspect "$STAND_IN_NODE" >/dev/null 2>&1 && return
  make_stand_in_debian
  say "building $STAND_IN_NODE: Node $PRIVATE_NODE_VERSION and npm $PRIVATE_NPM_VERSION from the npm registry"
  local context
  context=$(mktemp -d)
  cp docker/stand-in/node.Dockerfile "$context/"
  unpack_node "$context/node"
  "$DOCKER" build -q --build-arg DEBIAN_IMAGE="$STAND_IN_DEBIAN" -t "$STAND_IN_NODE" \
    -f "$context/node.Dockerfile" "$context" >/dev/null
  rm -rf "$context"
}

build_images() {
  DOCKER=$(docker_cli)
  export DOCKER_BUILDKIT=1
  "$DOCKER" info >/dev/null 2>&1 || { say "no Docker engine answers (start dockerd, or the Docker service)"; exit 1; }
  local python_image=${PYTHON_IMAGE:-} node_image=${NODE_IMAGE:-}
  if [ -z "$python_image" ]; then
    if have_or_pull "$OFFICIAL_PYTHON_IMAGE"; then
      python_image=$OFFICIAL_PYTHON_IMAGE
    else
      say "STAND-IN BASE: $OFFICIAL_PYTHON_IMAGE cannot be pulled here; the model host image is built on"
      say "$STAND_IN_PYTHON (Debian bookworm's python3.11 from Debian's packages), not the official image"
      make_stand_in_python
      python_image=$STAND_IN_PYTHON
    fi
  fi
  if [ -z "$node_image" ]; then
    if have_or_pull "$OFFICIAL_NODE_IMAGE"; then
      node_image=$OFFICIAL_NODE_IMAGE
    else
      say "STAND-IN BASE: $OFFICIAL_NODE_IMAGE cannot be pulled here; the gateway image is built on"
      say "$STAND_IN_NODE (Debian bookworm with Node $PRIVATE_NODE_VERSION from the npm registry), not the official image"
      use_node
      make_stand_in_node
      node_image=$STAND_IN_NODE
    fi
  fi
  local service image built=()
  while read -r service image; do
    case "$service" in
      model-host)
        say "building $image on $python_image (the first build downloads torch and its CUDA libraries: about 3 GB)"
        "$DOCKER" build --build-arg PYTHON_IMAGE="$python_image" -t "$image" -f docker/model-host.Dockerfile .
        ;;
      gateway)
        say "building $image on $node_image"
        "$DOCKER" build --build-arg NODE_IMAGE="$node_image" -t "$image" -f docker/gateway.Dockerfile .
        ;;
      *) continue ;;
    esac
    built+=("$image")
  done < <(compose_images)
  [ ${#built[@]} -gt 0 ] || { say "docker-compose.yml names no model-host or gateway image to build"; exit 1; }
  say "built ${built[*]} (on $python_image and $node_image)"
}

case "${1:-start}" in
  start) start ;;
  test) run_tests ;;
  setup) setup ;;
  images) build_images ;;
  make-demo-models)
    [ $# -eq 2 ] || { say "usage: ./runner.sh make-demo-models DIR"; exit 2; }
    setup_python
    make_demo_models "$2"
    ;;
  *)
    say "unknown command '$1' (use: start, test, setup, images, make-demo-models DIR)"
    exit 2
    ;;
esac
