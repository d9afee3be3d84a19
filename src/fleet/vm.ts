import { UserInputError } from "../errors";
import { lstat, open, readdir, readlink, rm, unlink } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ExpressionBuild } from "../nix/build";
import { configurationVmExpression, flakeVmExpression, moduleArgsExpression } from "../nix/system";
import type { Redact } from "../redact";
import { LocalArgsError, localRedactor, resolveLocalArgs, unknownOverrides, type LocalArgs, type LocalHost } from "./local-args";

/**
 * `cdktf-nixos vm`: one host of the stack as a local QEMU VM (`config.system.build.vm`), built from the deployment's
 * own source and module arguments, so the VM runs what `cdktf deploy` would put on the host.
 */
export interface VmPlan {
  readonly host: string;
  readonly build: ExpressionBuild;
  readonly args: LocalArgs;
  /** Takes the host's sensitive module arguments out of Nix's messages. */
  readonly redact: Redact;
}

/** The host of that name; an unknown name is refused with the names there are. */
export function findHost(hosts: readonly LocalHost[], name: string): LocalHost {
  const host = hosts.find((h) => h.name === name);
  if (host === undefined) throw new LocalArgsError(`the stack has no host '${name}' (hosts: ${hosts.map((h) => h.name).join(", ") || "none"})`);
  return host;
}

export function planVm(host: LocalHost, overrides: Readonly<Record<string, unknown>>, stateProblem?: string): VmPlan {
  const unknown = unknownOverrides([host], overrides);
  if (unknown !== undefined) throw new LocalArgsError(unknown);
  const args = resolveLocalArgs(host, overrides, { stateProblem });
  const redact = localRedactor([{ host, args }]);
  const source = host.spec.source;
  const what = `the VM of ${host.name}`;
  if (source.flake !== undefined) {
    return { host: host.name, args, redact, build: { expression: flakeVmExpression(source.flake), includes: [], flakes: true, what } };
  }
  const configuration = source.configuration!;
  return {
    host: host.name,
    args,
    redact,
    build: {
      // the module arguments are in the expression, which reaches Nix on stdin
      expression: configurationVmExpression(configuration, moduleArgsExpression(args.args)),
      includes: [...Object.entries(source.nixPath ?? {}).map(([k, v]) => `${k}=${v}`), `nixos-config=${configuration}`],
      what,
    },
  };
}

/**
 * Where the VM started by `run-NAME-vm` keeps its disk: NIX_DISK_IMAGE, else `NAME.qcow2` in the current directory
 * (nixpkgs' virtualisation.diskImage default).
 */
export function vmDiskImage(runScript: string, cwd: string, env: NodeJS.ProcessEnv): string {
  if (env.NIX_DISK_IMAGE !== undefined && env.NIX_DISK_IMAGE !== "") return env.NIX_DISK_IMAGE;
  const name = /^run-(.+)-vm$/.exec(basename(runScript))?.[1] ?? "nixos";
  return join(cwd, `${name}.qcow2`);
}

/** A VM disk that cdktf-nixos will neither boot from nor remove: the path names something else. */
export class VmDiskError extends UserInputError {}

/** What is at a VM's disk path: nothing yet, a QEMU qcow2 image, or the directory disk of a nixpkgs-lite VM. */
export type VmDisk = "missing" | "qcow2" | "nixpkgs-lite";

/** The first bytes of every qcow2 image ("QFI\xfb"). */
const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);
/** The file nixpkgs-lite's VM writes into its directory disk when it creates it, and what the disk may hold. */
export const LITE_DISK_MARKER = "nixos-lite-disk";
const LITE_DISK_ENTRIES = new Set([LITE_DISK_MARKER, "nix-var", "root"]);

/**
 * What the disk path holds, recognised by content, never by name: `NIX_DISK_IMAGE` left over in a shell can name any
 * file or directory of the user's, and QEMU would write into a raw file as into a disk. Anything that is not a VM disk
 * (a symbolic link, another file, a directory without nixpkgs-lite's marker) is a VmDiskError saying what it is.
 */
export async function inspectVmDisk(path: string, fromEnvironment: boolean): Promise<VmDisk> {
  const refuse = (what: string) => new VmDiskError(`${path} is ${what}, not a VM disk: cdktf-nixos neither boots from it nor removes it; ` +
    (fromEnvironment ? "NIX_DISK_IMAGE names it: unset NIX_DISK_IMAGE, or point it at a VM disk or at a path that does not exist yet"
      : "move it away, or set NIX_DISK_IMAGE to where the VM should keep its disk"));
  let stat;
  try {
    stat = await lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "missing";
    throw refuse(`a path that cannot be examined (${code ?? String(err)})`);
  }
  if (stat.isSymbolicLink()) throw refuse(`a symbolic link (to ${await readlink(path)})`);
  if (stat.isFile()) {
    const file = await open(path, "r");
    try {
      const head = Buffer.alloc(QCOW2_MAGIC.length);
      const { bytesRead } = await file.read(head, 0, head.length, 0);
      if (bytesRead === head.length && head.equals(QCOW2_MAGIC)) return "qcow2";
    } finally {
      await file.close();
    }
    throw refuse("a file that does not start with QEMU's qcow2 header");
  }
  if (stat.isDirectory()) {
    const entries = await readdir(path, { withFileTypes: true });
    const marker = entries.find((e) => e.name === LITE_DISK_MARKER);
    if (marker?.isFile() === true && entries.every((e) => LITE_DISK_ENTRIES.has(e.name))) return "nixpkgs-lite";
    throw refuse("a directory");
  }
  throw refuse("neither a file nor a directory");
}

/** Removes a disk `inspectVmDisk` recognised: the qcow2 file, or the nixpkgs-lite disk directory. */
export async function removeVmDisk(path: string, disk: Exclude<VmDisk, "missing">): Promise<void> {
  if (disk === "qcow2") await unlink(path);
  else await rm(path, { recursive: true });
}
