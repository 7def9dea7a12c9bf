#!/usr/bin/env bash
# Regenerates the Python stubs for runtime_v1.proto (messages, gRPC stubs and type stubs).
#
# Run from anywhere; uses the project's virtualenv (grpcio-tools must be installed there).
# The proto is compiled with the repository root as include path so that the generated
# gRPC module imports its message module by its full package name.
set -euo pipefail
repo_root="$(cd "$(dirname "$0")/../../.." && pwd)"
python="${PYTHON:-$repo_root/.venv/bin/python}"
cd "$repo_root"
"$python" -m grpc_tools.protoc \
  --proto_path=. \
  --python_out=. \
  --pyi_out=. \
  --grpc_python_out=. \
  securekube/kubelet/cri/runtime_v1.proto
