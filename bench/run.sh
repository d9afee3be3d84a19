#!/usr/bin/env bash
# npm run bench: every benchmark, as root on a machine set up by test/run-all.sh (Nix, sshd, iproute2).
set -euo pipefail
cd "$(dirname "$0")/.."
export CHECKPOINT_DISABLE=1 NIX_CONFIG="substituters ="
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }  # peak RSS of Nix processes
npm run --silent build
# what was built is what is measured: every table records this commit, and no benchmark builds again
export BENCH_COMMIT="$(git rev-parse HEAD)"
# one results file for the whole run; the README's tables are written from it at the end
BENCH_RESULTS_FILE="bench/results/$(date -u +%Y-%m-%d)-$(git rev-parse --short=12 HEAD).json"
export BENCH_RESULTS_FILE="$PWD/$BENCH_RESULTS_FILE"
npx tsx bench/synth.ts
npx tsx bench/fleet-eval.ts
npx tsx bench/copy.ts
npx tsx bench/push.ts
npx tsx bench/status.ts
npx tsx bench/cache.ts
npx tsx bench/image-upload.ts
npx tsx bench/readme-tables.ts "$BENCH_RESULTS_FILE"
