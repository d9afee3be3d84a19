#!/bin/sh
# A stand-in for systemd-run on the test targets, which have no systemd: it accepts exactly the options cdktf-nixos
# passes (anything else is an error, so a changed command line fails the tests), records the transient unit under
# /run/systemd/transient like systemd does, refuses a unit name that exists, and starts the command detached without
# waiting (systemd-run without --wait returns once the service started). Installed by installSystemdRunStandIn().
set -eu
unit=
while [ $# -gt 0 ]; do
  case "$1" in
    --unit=*) unit=${1#--unit=} ;;
    --description=*|--collect|--no-ask-password|--quiet|--service-type=exec) ;;
    -E) shift ;; # -E NAME passes the caller's variable on; the stand-in's children inherit it anyway
    --) shift; break ;;
    *) echo "systemd-run stand-in: unsupported option $1" >&2; exit 1 ;;
  esac
  shift
done
[ -n "$unit" ] || { echo "systemd-run stand-in: no --unit=" >&2; exit 1; }
[ $# -gt 0 ] || { echo "systemd-run stand-in: no command after --" >&2; exit 1; }
mkdir -p /run/systemd/transient
if [ -e "/run/systemd/transient/$unit.service" ]; then
  echo "Failed to start transient service unit: Unit $unit.service was already loaded or has a fragment file." >&2
  exit 1
fi
printf '%s\n' "$@" >"/run/systemd/transient/$unit.service"
setsid -f "$@" </dev/null >/dev/null 2>&1
