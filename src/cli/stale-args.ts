import { readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where earlier versions of cdktf-nixos wrote module arguments: `<tmpdir>/cdktf-nixos-args-XXXXXX/args.json`. */
const STALE_PREFIX = "cdktf-nixos-args-";
/** Older than any deployment still running. */
const STALE_AFTER_MS = 60 * 60 * 1000;

/**
 * Removes the module-argument files earlier versions left when killed (plaintext values in /tmp). This version never
 * writes them (the values reach Nix on its stdin); it only cleans up after its predecessors, and only this user's,
 * an hour old or more.
 */
export async function removeStaleArgsDirs(dir = tmpdir(), now = Date.now()): Promise<string[]> {
  const removed: string[] = [];
  const uid = process.getuid?.();
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    if (!entry.startsWith(STALE_PREFIX)) continue;
    const path = join(dir, entry);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined || !info.isDirectory() || (uid !== undefined && info.uid !== uid) || now - info.mtimeMs < STALE_AFTER_MS) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}
