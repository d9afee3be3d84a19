#!/usr/bin/env bash
# The whole test suite on a fresh Debian/Ubuntu machine, as root: installs what it needs (idempotent),
# then lint, typecheck, build, the unit suite and the world suite (real Nix, namespaced sshd targets, systemd
# targets, terraform).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[test] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "run as root: the world suite creates network/mount namespaces and target Nix stores (sudo $0)"
  exit 2
fi
if ! command -v apt-get >/dev/null; then
  say "this script installs its tools with apt-get (Debian/Ubuntu); elsewhere install nix, openssh-server, debootstrap, systemd-nspawn,"
  say "iproute2 and util-linux by hand, then run: npm ci && npx vitest run"
  exit 2
fi

missing=()
command -v nix-store >/dev/null || missing+=(nix-bin)
{ [ -f /etc/nix/nix.conf ] && getent group nixbld >/dev/null; } || missing+=(nix-setup-systemd)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
command -v sudo >/dev/null || missing+=(sudo)
command -v zstd >/dev/null || missing+=(zstd)
[ -x /usr/bin/python3 ] || missing+=(python3)
[ -x /usr/bin/time ] || missing+=(time)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
# nixpkgs-lite's images: ext4 by mke2fs -d, VHD by qemu-img (as nixpkgs' make-disk-image), ISO by xorriso
command -v mke2fs >/dev/null || missing+=(e2fsprogs)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v xorriso >/dev/null || missing+=(xorriso)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# systemd-container adds libnss-mymachines to nsswitch.conf; this machine runs no machined to answer it
if dpkg -s libnss-mymachines >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq libnss-mymachines >/dev/null
fi
command -v terraform >/dev/null || { say "terraform (>= 1.5) must be on PATH; it is not a Debian package"; exit 2; }

export CHECKPOINT_DISABLE=1
# Without this every Nix build spends seconds retrying a binary cache that is not reachable.
export NIX_CONFIG="substituters =${NIX_CONFIG:+
$NIX_CONFIG}"

say "npm ci"
npm ci --no-audit --no-fund --loglevel=error
say "lint + typecheck + build"
npx eslint .
npx tsc -p tsconfig.json --noEmit
# the CDK Terrain package (cdktn-nixos) is built from the same sources: they must typecheck against cdktn too
npx tsc -p tsconfig.build-cdktn.json --noEmit
npm run --silent build

# The systemd targets' root filesystem: built once per machine (debootstrap from Debian's mirror), then reused.
rootfs_started=$(date +%s)
rootfs=$(test/harness/systemd-rootfs.sh)
say "systemd target rootfs $rootfs ready in $(( $(date +%s) - rootfs_started )) s"

results=$(mktemp -d)
status=0
for project in unit world; do
  say "vitest: $project"
  npx vitest run --project "$project" --reporter=default --reporter=json \
    --outputFile.json="$results/$project.json" || status=1
done
node -e '
  let passed = 0, failed = 0, skipped = 0;
  for (const f of process.argv.slice(1)) {
    try {
      const r = JSON.parse(require("fs").readFileSync(f, "utf8"));
      passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
    } catch { failed += 1; console.error("no results in " + f); }
  }
  console.log(`vitest: ${passed} passed, ${failed} failed, ${skipped} skipped`);
' "$results/unit.json" "$results/world.json"
rm -rf "$results"
exit $status
