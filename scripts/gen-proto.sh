#!/usr/bin/env bash
# Regenerates the code of both sides of the gRPC contract from proto/.
# Generated code is committed; test suites on both sides fail when it is stale.
# Usage: scripts/gen-proto.sh [OUT_ROOT]   (OUT_ROOT defaults to the repo root;
# the staleness tests generate into a temporary root and compare)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
python=${SIDECAR_PYTHON:-$root/sidecar/.venv/bin/python}

mkdir -p "$out/sidecar/src/modelhost/v1" "$out/apps/gateway/src/model-host/generated"

# Python: the proto package modelhost.v1 lands inside our package as modelhost/v1,
# so the generated `from modelhost.v1 import modelhost_pb2` resolves as-is.
PATH="$(dirname "$python"):$PATH" "$python" -m grpc_tools.protoc -I "$root/proto" \
  --python_out="$out/sidecar/src" --grpc_python_out="$out/sidecar/src" \
  --mypy_out="$out/sidecar/src" --mypy_grpc_out="$out/sidecar/src" \
  "$root/proto/modelhost/v1/modelhost.proto"
[ -f "$out/sidecar/src/modelhost/v1/__init__.py" ] || : > "$out/sidecar/src/modelhost/v1/__init__.py"

# TypeScript: types only; the gateway loads the .proto at run time with the same options.
cd "$root"
npx --no-install proto-loader-gen-types --keepCase --longs=Number --enums=String --defaults --oneofs \
  --grpcLib=@grpc/grpc-js --outDir="$out/apps/gateway/src/model-host/generated" \
  proto/modelhost/v1/modelhost.proto proto/grpc/health/v1/health.proto >/dev/null
# The gateway is an ES module package: relative imports need their .js suffix.
find "$out/apps/gateway/src/model-host/generated" -name '*.ts' \
  -exec sed -i -E "s#(from '\.{1,2}/[^']*)'#\1.js'#" {} +
