import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/** What a world test can need from the machine. */
export type Requirement = "root" | "nix" | "sshd" | "netns" | "terraform" | "aws-provider-mirror" | "zstd" | "python3" | "time" | "systemd-targets" | "image-tools";

const checks: Record<Requirement, () => string | undefined> = {
  root: () => (process.getuid?.() === 0 ? undefined : "must run as root (namespaces, mounts, target stores)"),
  nix: () => (onPath("nix-store") ? undefined : "nix-store not on PATH (apt-get install nix-bin nix-setup-systemd)"),
  sshd: () => (existsSync("/usr/sbin/sshd") ? undefined : "/usr/sbin/sshd missing (apt-get install openssh-server)"),
  netns: () => (onPath("ip") && onPath("unshare") ? undefined : "ip/unshare missing (apt-get install iproute2 util-linux)"),
  zstd: () => (onPath("zstd") ? undefined : "zstd not on PATH (apt-get install zstd)"),
  // nixpkgs-lite's test driver runs test scripts as nixpkgs' does: in Python
  python3: () => (existsSync("/usr/bin/python3") ? undefined : "/usr/bin/python3 missing (apt-get install python3)"),
  time: () => (existsSync("/usr/bin/time") ? undefined : "/usr/bin/time missing (apt-get install time): it measures a process's peak memory"),
  "systemd-targets": () =>
    onPath("debootstrap") && onPath("systemd-nspawn")
      ? undefined
      : "debootstrap/systemd-nspawn missing (apt-get install debootstrap systemd-container): systemd target hosts",
  "image-tools": () =>
    onPath("mke2fs") && onPath("debugfs") && onPath("qemu-img") && onPath("xorriso")
      ? undefined
      : "mke2fs/debugfs/qemu-img/xorriso missing (apt-get install e2fsprogs qemu-utils xorriso): nixpkgs-lite's disk and ISO images",
  terraform: () => (onPath("terraform") ? undefined : "terraform not on PATH"),
  "aws-provider-mirror": () =>
    existsSync("/opt/tf-plugins/registry.terraform.io/hashicorp/aws")
      ? undefined
      : "no hashicorp/aws filesystem mirror under /opt/tf-plugins",
};

function onPath(tool: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns the reason a test cannot run here, or undefined when it can. Under CI=true a missing tool is an error,
 * never a skip: use `describe.skipIf(missing(...))` only through this function.
 */
export function missing(...requirements: Requirement[]): string | undefined {
  const reasons = requirements.map((r) => checks[r]()).filter((r): r is string => r !== undefined);
  if (reasons.length === 0) return undefined;
  const reason = reasons.join("; ");
  if (process.env.CI === "true") {
    throw new Error(`CI=true and this test cannot run: ${reason}. The test command (test/run-all.sh) installs it.`);
  }
  console.warn(`skipping: ${reason}`);
  return reason;
}
