import { spawn, spawnSync } from "node:child_process";

/**
 * zstd on the deploying machine, as the `zstd` program: native speed on a core of its own, no native module to
 * build. Each call makes one frame, which `zstd -d` on the target reads back.
 */

let available: boolean | undefined;

export function localZstdAvailable(): boolean {
  available ??= spawnSync("zstd", ["--version"], { stdio: "ignore" }).status === 0;
  return available;
}

/** zstd's default level: ≈ 3× on NixOS closures at a few hundred MB/s per core. */
export const ZSTD_LEVEL = 3;

export function zstdCompress(data: Buffer, level = ZSTD_LEVEL): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("zstd", ["-q", `-${level}`, "-c"], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    child.once("error", (err) => reject(new Error(`zstd could not run: ${err.message}`)));
    child.once("close", (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`zstd failed (exit ${code}): ${stderr.trim()}`));
    });
    child.stdin.on("error", () => undefined); // a failing zstd is reported by its exit status
    child.stdin.end(data);
  });
}
