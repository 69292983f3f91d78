#!/usr/bin/env bash
# Install what is missing and build custos into build/ (release-ish: debugoptimized).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build >/dev/null
