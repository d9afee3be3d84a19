#!/usr/bin/env bash
# The root filesystem of the systemd target hosts: Debian bookworm with systemd as PID 1, sshd and Nix 2.8.
# Built once per machine with debootstrap (~2 minutes, ~420 MB) into a cache outside the repository, keyed by a
# hash of this recipe, so a changed recipe builds a new one and an unchanged one is reused. Targets never write to
# it: each boots an overlay of it (systemd-targets.ts).
#
#   systemd-rootfs.sh [CACHE_DIR]     prints the rootfs directory on stdout (builds it first when missing)
#
# CACHE_DIR defaults to $CDKTF_NIXOS_ROOTFS_CACHE or /var/cache/cdktf-nixos-test.
set -euo pipefail

cache=${1:-${CDKTF_NIXOS_ROOTFS_CACHE:-/var/cache/cdktf-nixos-test}}
suite=bookworm
mirror=http://deb.debian.org/debian
# libdbi-perl: debootstrap does not resolve the virtual perl-dbdabi-94 that nix-bin's libdbd-sqlite3-perl needs.
packages=systemd,systemd-sysv,dbus,openssh-server,iproute2,nix-bin,nix-setup-systemd,libdbi-perl,sudo,procps,util-linux

recipe_hash=$(sha256sum "$0" | cut -c1-16)
rootfs=$cache/rootfs-$suite-$recipe_hash
say() { printf '[systemd-rootfs] %s\n' "$*" >&2; }

if [ -f "$rootfs/.complete" ]; then echo "$rootfs"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # two test runs on one machine: the second waits for the first's build
if [ -f "$rootfs/.complete" ]; then echo "$rootfs"; exit 0; fi

for tool in debootstrap systemd-nspawn; do
  command -v "$tool" >/dev/null || { say "$tool is missing: apt-get install debootstrap systemd-container"; exit 2; }
done

building=$cache/.building-$recipe_hash
rm -rf "$building"
started=$(date +%s)
say "debootstrap $suite into $building (about two minutes, once per machine and recipe)"
debootstrap --variant=minbase --include="$packages" "$suite" "$building" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
  say "debootstrap failed; the end of $cache/debootstrap.log:"; tail -20 "$cache/debootstrap.log" >&2; exit 1; }

# Nothing periodic in a test target (apt-daily, man-db, …): a timer firing mid-test is noise.
rm -f "$building"/etc/systemd/system/timers.target.wants/*
# Each target gets its own host key when it is created.
rm -f "$building"/etc/ssh/ssh_host_*
rm -rf "$building"/var/cache/apt/archives/*.deb "$building"/var/lib/apt/lists/*

date -u +%FT%TZ > "$building/.complete"
rm -rf "$rootfs"
mv "$building" "$rootfs"
# Older recipes' trees are of no further use, unless a target (another checkout's run) still boots from one.
for old in "$cache"/rootfs-*; do
  [ "$old" = "$rootfs" ] || grep -qF "lowerdir=$old," /proc/self/mountinfo || rm -rf "$old"
done
say "built $rootfs in $(( $(date +%s) - started )) s"
echo "$rootfs"
