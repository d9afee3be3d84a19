import { copyFile, lstat, mkdir, mkdtemp, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./host-util";
import type { TargetHost } from "./target-hosts";

/**
 * Reading nixpkgs-lite's images back, as a machine booting one would see them: a VHD or raw disk is one ext4
 * filesystem (read with debugfs, no mount), an ISO is ISO 9660 with Rock Ridge (read with xorriso). `extractImage`
 * writes the image's /nix and /nix-path-registration under `dest`.
 */
export type ImageKind = "vhd" | "raw" | "iso";

export function imageKindOf(file: string): ImageKind {
  if (file.endsWith(".vhd")) return "vhd";
  if (file.endsWith(".iso")) return "iso";
  return "raw";
}

export async function extractImage(file: string, kind: ImageKind, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  if (kind === "iso") {
    await run("xorriso", ["-osirrox", "on", "-indev", file, "-extract", "/nix", join(dest, "nix"), "-extract", "/nix-path-registration", join(dest, "nix-path-registration")]);
    return;
  }
  let raw = file;
  if (kind === "vhd") {
    raw = join(dest, "..", `${dest.split("/").at(-1)}.raw`);
    await run("qemu-img", ["convert", "-f", "vpc", "-O", "raw", file, raw]);
  }
  // debugfs exits 0 on most errors: what it could not do shows in what was written
  await run("debugfs", ["-R", `rdump /nix ${dest}`, raw]);
  await run("debugfs", ["-R", `dump /nix-path-registration ${join(dest, "nix-path-registration")}`, raw]);
  if (raw !== file) await run("rm", ["-f", raw]);
}

/** `path` (absolute, as on the booted machine) inside an extracted tree, following symlinks into the tree. */
export async function resolveInTree(dest: string, path: string): Promise<string> {
  let current = "";
  const parts = path.split("/").filter(Boolean);
  for (let hops = 0; parts.length > 0; ) {
    const part = parts.shift()!;
    if (part === "..") {
      current = current.slice(0, Math.max(0, current.lastIndexOf("/")));
      continue;
    }
    if (part === ".") continue;
    const next = `${current}/${part}`;
    const stat = await lstat(join(dest, next));
    if (stat.isSymbolicLink()) {
      if (++hops > 40) throw new Error(`${path}: too many symlinks in ${dest}`);
      const target = await readlink(join(dest, next));
      parts.unshift(...target.split("/").filter(Boolean));
      if (!target.startsWith("/")) parts.unshift(...current.split("/").filter(Boolean));
      current = "";
    } else {
      current = next;
    }
  }
  return join(dest, current);
}

/**
 * A target host that boots from a disk image, as an EC2 instance launched from an AMI does: the image's store,
 * profile and boot default put in the host's (empty) /nix, the store paths registered as NixOS images register them
 * at first boot (`nix-store --register-validity < /nix-path-registration`), then a reboot into the boot default.
 */
export async function bootFromImage(host: TargetHost, rawDisk: string): Promise<void> {
  const tree = await mkdtemp(join(tmpdir(), "cdktf-nixos-image-boot-"));
  try {
    await extractImage(rawDisk, "raw", tree);
    await run("cp", ["-a", `${tree}/nix/store/.`, `${host.storeDir}/store/`]);
    await run("cp", ["-a", `${tree}/nix/var/nix/profiles/.`, `${host.storeDir}/var/nix/profiles/`]);
    await run("cp", ["-a", `${tree}/nix/var/nixos-lite`, `${host.storeDir}/var/`]);
    await copyFile(join(tree, "nix-path-registration"), `${host.storeDir}/nix-path-registration`);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
  const registered = await host.exec("nix-store --register-validity < /nix/nix-path-registration && rm /nix/nix-path-registration");
  if (registered.exitCode !== 0) throw new Error(`${host.name}: registering the image's store paths failed: ${registered.stderr}`);
  await host.restart({ bootDefault: true });
}
