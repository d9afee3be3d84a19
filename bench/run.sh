#!/usr/bin/env bash
# npm run bench: every benchmark, as root on a machine set up by test/run-all.sh (Nix, sshd, iproute2).
set -euo pipefail
cd "$(dirname "$0")/.."
export CHECKPOINT_DISABLE=1 NIX_CONFIG="substituters ="
npm run --silent build
npx tsx bench/synth.ts
npx tsx bench/copy.ts
