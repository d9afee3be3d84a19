import { lstat, mkdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./host-util";

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
