/**
 * Image upload benchmark (I1): peak memory of `cdktf-nixos upload-image` (what NixosImage.fromConfiguration runs at
 * apply) putting an amazon image in S3, for images of 64 MiB and 1 GiB. The file is read as a stream and sent in
 * 16 MiB parts, 4 at once, so the peak must not grow with the image (goal: the 1 GiB upload's peak RSS ≤ 1.2× the
 * 64 MiB one's, and well under the image's size).
 *
 * The images are nixpkgs-lite amazon images in raw format with amazonImage.sizeMB set (a filesystem of that size,
 * mostly free space, so all of it is read and sent); built before the measured run, so the run is the upload (Nix
 * finds them built). The S3 server is the npm s3rver in this process; peak RSS is /usr/bin/time's for the command.
 *
 * Env: BENCH_IMAGE_MIB (64,1024).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { imageUploadExpression } from "../src/deploy/image-upload";
import { imageFileIn } from "../src/nix/image";
import { NIXPKGS_LITE } from "../test/harness/fixture";
import { startS3Server } from "../test/harness/s3-server";
import { run } from "../test/harness/target-hosts";
import { recordTable } from "./results";

const SIZES = (process.env.BENCH_IMAGE_MIB ?? "64,1024").split(",").map(Number);
const CLI = join(__dirname, "..", "lib", "cli", "bin.js");
const BUCKET = "bench-images";

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-image-"));
  const s3 = await startS3Server("127.0.0.1", [BUCKET]);
  try {
    console.log(`load average before: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
    const measured: Array<{ mib: number; bytes: number; peakKiB: number; seconds: number }> = [];
    for (const mib of SIZES) {
      const configuration = join(dir, `web-${mib}.nix`);
      writeFileSync(configuration, `{ ... }: { networking.hostName = "web"; amazonImage.format = "raw"; amazonImage.sizeMB = ${mib}; }\n`);
      const request = { source: { configuration, nixPath: { nixpkgs: NIXPKGS_LITE } }, moduleArgs: {}, format: "amazon" as const, drvPath: "", key: `images/web-${mib}.img` };
      const { expression, args } = imageUploadExpression(request);
      const drvPath = execFileSync("nix-instantiate", [...args, "-"], { input: expression, encoding: "utf8" }).trim();
      const outPath = execFileSync("nix-store", ["--realise", drvPath], { encoding: "utf8" }).trim();
      const bytes = (await imageFileIn(outPath, "amazon")).size;
      const timed = await run("/usr/bin/time", ["-f", "peak %M KiB %e s", process.execPath, CLI, "upload-image", "--format", "amazon", "--config", configuration,
        "-I", `nixpkgs=${NIXPKGS_LITE}`, "--drv-path", drvPath, "--bucket", BUCKET, "--key", request.key, "--region", "us-east-1", "--s3-endpoint", s3.endpoint],
      { env: { ...process.env, ...s3.env } as Record<string, string> });
      const [, peak, seconds] = /peak (\d+) KiB ([\d.]+) s/.exec(timed.stderr) ?? [];
      const stored = await fetch(`${s3.endpoint}/${BUCKET}/${request.key}`, { method: "HEAD" });
      if (Number(stored.headers.get("content-length")) !== bytes) throw new Error(`the object is ${stored.headers.get("content-length")} bytes, the image ${bytes}`);
      measured.push({ mib, bytes, peakKiB: Number(peak), seconds: Number(seconds) });
      console.log(`I1 ${mib} MiB image: peak RSS ${(Number(peak) / 1024).toFixed(0)} MiB, ${seconds} s`);
    }
    const smallest = measured[0]!;
    recordTable("image", {
      header: ["measurement", "image", "peak RSS of upload-image", "vs the smallest image", "goal"],
      rows: measured.map((m) => [`I1 upload of an amazon image to S3`, `${m.mib} MiB (${m.bytes} bytes, ${m.seconds.toFixed(1)} s)`,
        `${(m.peakKiB / 1024).toFixed(0)} MiB (**${(m.peakKiB / 1024 / m.mib).toFixed(2)}×** the image)`, `**${(m.peakKiB / smallest.peakKiB).toFixed(2)}×**`,
        "bounded: ≤ 1.2× the smallest's"]),
      conditions: `nixpkgs-lite amazon images (raw, amazonImage.sizeMB), built before the run; s3rver on loopback; multipart 16 MiB parts, 4 at once; ` +
        `one run each; load average after: ${readFileSync("/proc/loadavg", "utf8").trim()}`,
    });
  } finally {
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
