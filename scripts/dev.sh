#!/usr/bin/env bash
# The README's first command: install missing Debian packages, build, and start a dev
# server (single node, unsealed, plain HTTP on 127.0.0.1:8200, root token printed).
# Extra arguments go to `custos server -dev`, e.g. -dev-root-token-id=root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/build.sh
exec ./build/custos server -dev "$@"
