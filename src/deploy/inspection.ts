/** What the target is, read before anything is copied. */
export interface TargetSystem {
  /** Nix system double of the target, e.g. "x86_64-linux". */
  readonly system: string;
  /** Whether nix-store is on the PATH of non-interactive sessions. */
  readonly nix: boolean;
  /** Whether the target looks like NixOS (/etc/NIXOS or a /run/current-system with switch-to-configuration). */
  readonly nixos: boolean;
  /** Whether systemd is PID 1 (/run/systemd/system exists), as nixos-rebuild checks. */
  readonly systemd: boolean;
  /** Store path /run/current-system points at, if any. */
  readonly currentSystem?: string;
  /** Generation number /nix/var/nix/profiles/system points at, if any. */
  readonly profileGeneration?: number;
  /** Store path of that generation, if any. */
  readonly profileSystem?: string;
  /**
   * Earlier confirmed activations whose script was stopped before the confirmation was decided: nothing rolled them
   * back, so the host may run a system no one confirmed. Reported once: the next activation closes them.
   */
  readonly unconfirmed?: readonly { readonly id: string; readonly toplevel: string }[];
  /** Which boot of the host this is (see BOOT_ID): a different one later means it restarted in between. */
  readonly bootId?: string;
}

/**
 * The identity of the host's current boot, as a shell expression: the kernel's boot id, and when PID 1 started (a
 * container or namespace restarted on the same kernel has a new PID 1).
 */
export const BOOT_ID = "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)-$(cut -d' ' -f22 /proc/1/stat 2>/dev/null)";

/**
 * Where activations keep their state on the target: /run, so a reboot forgets it (and releases the lock with it).
 * Every activation writes `<id>.log`, `<id>.started`, `<id>.status`, … there; `lock` serializes deployments.
 */
export const ACTIVATION_DIR = "/run/cdktf-nixos";

/** Succeeds while the activation script of `state` (ACTIVATION_DIR/ID) runs: its recorded pid, with its start time. */
export function scriptAliveTest(state: string): string {
  return `{ read p t < ${state}.pid && [ "$(cut -d' ' -f22 /proc/$p/stat)" = "$t" ]; } 2>/dev/null`;
}

/** The system profile nixos-rebuild manages. */
export const SYSTEM_PROFILE = "/nix/var/nix/profiles/system";

/** One remote command that reports what TargetSystem needs as `key=value` words (store paths have no spaces). */
export const INSPECT_COMMAND = [
  "echo machine=$(uname -m)",
  `echo boot=${BOOT_ID}`,
  "command -v nix-store >/dev/null 2>&1 && echo nix=1 || echo nix=0",
  "test -e /etc/NIXOS && echo nixos=1 || echo nixos=0",
  "test -d /run/systemd/system && echo systemd=1 || echo systemd=0",
  "test -e /run/current-system && echo current=$(readlink -f /run/current-system)",
  `test -e ${SYSTEM_PROFILE} && echo profile=$(readlink ${SYSTEM_PROFILE}) profileSystem=$(readlink -f ${SYSTEM_PROFILE})`,
  `for f in ${ACTIVATION_DIR}/*.deadline; do s=\${f%.deadline}; [ -e "$f" ] && [ ! -d "$s.decided" ] && [ ! -e "$s.done" ] && ! ${scriptAliveTest('"$s"')} && echo "unconfirmed=\${s##*/}:$(cut -d' ' -f2 "$f")"; done`,
  "true",
].join("; ");

export function parseBootId(word: string | undefined): string | undefined {
  return word !== undefined && /^[0-9a-f-]{1,64}-\d{1,20}$/.test(word) ? word : undefined;
}

const MACHINE_TO_SYSTEM: Record<string, string> = {
  x86_64: "x86_64-linux",
  aarch64: "aarch64-linux",
  arm64: "aarch64-linux",
  i686: "i686-linux",
  armv7l: "armv7l-linux",
  riscv64: "riscv64-linux",
};

/** Generation number of a profile link target such as `system-42-link`. */
export function parseGeneration(linkTarget: string): number | undefined {
  const match = /(?:^|\/)system-(\d+)-link$/.exec(linkTarget.trim());
  return match ? Number(match[1]) : undefined;
}

/** Reads INSPECT_COMMAND's output. */
export function parseInspection(output: string): TargetSystem {
  const values = new Map<string, string>();
  for (const word of output.split(/\s+/)) {
    const eq = word.indexOf("=");
    if (eq > 0) values.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const unconfirmed = output.split(/\s+/).filter((w) => w.startsWith("unconfirmed=")).flatMap((w) => {
    const match = /^unconfirmed=([0-9a-f]{1,64}):(\/nix\/store\/\S+)$/.exec(w);
    return match === null ? [] : [{ id: match[1], toplevel: match[2] }];
  });
  const bootId = parseBootId(values.get("boot"));
  const machine = values.get("machine") ?? "";
  const current = values.get("current") || undefined;
  const profileSystem = values.get("profileSystem") || undefined;
  return {
    system: MACHINE_TO_SYSTEM[machine] ?? `${machine}-linux`,
    nix: values.get("nix") === "1",
    nixos: values.get("nixos") === "1" || current !== undefined,
    systemd: values.get("systemd") === "1",
    currentSystem: current,
    profileGeneration: parseGeneration(values.get("profile") ?? ""),
    profileSystem,
    ...(unconfirmed.length > 0 ? { unconfirmed } : {}),
    ...(bootId !== undefined ? { bootId } : {}),
  };
}
