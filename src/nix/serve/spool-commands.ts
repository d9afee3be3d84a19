/**
 * The target side of the spooled copy, as shell commands (pure builders, tested on exact strings). They need only a
 * POSIX sh, coreutils and nix-store; zstd when segments arrive compressed.
 *
 * - the importer runs the one `nix-store --serve --write` of the copy. Its input is the preamble (greeting and
 *   QueryValidPaths with lock), read from the channel with `head -c`, then the spooled segments in the order the
 *   client names them on the channel. Nix registers every path in dependency order, as with one channel.
 * - each data channel writes the segments it is sent into the spool: to a hidden name, size-checked, renamed, and
 *   announced on its stdout.
 * - the probe says what the target has and removes spools that killed runs left behind.
 */

export const SPOOL_PREFIX = "cdktf-nixos-spool.";
/** The importer marks its notices on stderr with this, apart from what Nix prints there. */
export const CONSUMED_MARK = "@cdktf-nixos consumed ";
/** The probe's answer when `head -c` reads exactly what it is asked for: the framing depends on it. */
export const EXACT_FRAMING = "exact-framing";
export const TARGET_ZSTD = "zstd";

/** The spool's path on the target: in the login user's TMPDIR, named by an unguessable id. */
export function spoolPath(id: string): string {
  if (!/^[a-z0-9]{16,64}$/.test(id)) throw new Error(`spool id must be 16-64 lowercase letters or digits, got '${id}'`);
  return `"\${TMPDIR:-/tmp}/${SPOOL_PREFIX}${id}"`;
}

export function importerCommand(id: string, preambleBytes: number): string {
  if (!Number.isSafeInteger(preambleBytes) || preambleBytes <= 0) throw new Error(`preamble length must be a positive integer, got ${preambleBytes}`);
  return [
    `S=${spoolPath(id)}`,
    // mkdir fails on anything already there (a symlink planted by someone else included); 0700 from the start
    `mkdir -m 700 "$S" || exit 97`,
    // the pid, and the PID namespace it is a pid in: containers sharing a /tmp cannot judge each other's
    `echo "$$ $(readlink /proc/$$/ns/pid 2>/dev/null)" > "$S/pid"`,
    `trap 'rm -rf "$S"' EXIT`,
    `trap 'exit 129' HUP INT TERM`,
    `{ head -c ${preambleBytes} && while read -r n k; do ` +
      `case "$k" in z) zstd -qdc -- "$S/$n" ;; r) cat -- "$S/$n" ;; *) break ;; esac || exit 98; ` +
      `rm -f -- "$S/$n"; echo "${CONSUMED_MARK}$n" >&2; ` +
      `done; } | nix-store --serve --write`,
  ].join("; ");
}

export function dataChannelCommand(id: string): string {
  return [
    `S=${spoolPath(id)}`,
    // checked per segment, not at start: the data channels start with the importer, which makes the spool
    `while read -r n size; do ` +
      `{ [ -d "$S" ] && [ ! -L "$S" ] && [ -O "$S" ]; } || { echo "the spool $S is gone" >&2; exit 97; }; ` +
      `{ head -c "$size" > "$S/.$n" && [ "$(wc -c < "$S/.$n")" -eq "$size" ] && mv -- "$S/.$n" "$S/$n" && echo "$n"; } ` +
      `|| { rm -f -- "$S/.$n"; echo "segment $n did not arrive whole" >&2; exit 98; }; ` +
      `done`,
  ].join("; ");
}

/** Removes the spool (the client's last word; the importer's trap usually did it already). */
export function removeSpoolCommand(id: string): string {
  return `rm -rf -- ${spoolPath(id)}`;
}

/**
 * Two echoes that time the round trip, what the target can do, and a sweep of spools whose importer is gone (killed
 * with SIGKILL, or a reboot of a disk /tmp). A spool whose importer cannot be checked (no pid file yet: a concurrent
 * run may have just made it; or a pid of another PID namespace sharing this /tmp) is only removed once it has not
 * changed for ten minutes.
 */
export function probeCommand(): string {
  return [
    // the client times the second echo: a round trip through a running shell, with no fork or sshd work in it
    `read -r a && echo "$a"`,
    `read -r b && echo "$b"`,
    `command -v zstd >/dev/null 2>&1 && echo ${TARGET_ZSTD}`,
    `[ "$(printf abcdef | { head -c 2 >/dev/null; cat; })" = cdef ] && echo ${EXACT_FRAMING}`,
    `for d in "\${TMPDIR:-/tmp}"/${SPOOL_PREFIX}*; do ` +
      `{ [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ]; } || continue; ` +
      `p=; n=; read -r p n < "$d/pid" 2>/dev/null; ` +
      `if [ -n "$p" ] && [ "$n" = "$(readlink /proc/$$/ns/pid 2>/dev/null)" ]; then kill -0 "$p" 2>/dev/null && continue; ` +
      `else [ -n "$(find "$d" -maxdepth 0 -mmin +10)" ] || continue; fi; ` +
      `rm -rf -- "$d"; ` +
      `done`,
    "true",
  ].join("; ");
}

export interface TargetCapabilities {
  /** `head -c` stops exactly where told, so a shell can split one input stream. */
  readonly exactFraming: boolean;
  readonly zstd: boolean;
}

/** The probe's answer after the two echoes. */
export function parseProbe(stdout: string): TargetCapabilities {
  const lines = new Set(stdout.split("\n").map((l) => l.trim()));
  return { exactFraming: lines.has(EXACT_FRAMING), zstd: lines.has(TARGET_ZSTD) };
}
