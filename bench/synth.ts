/**
 * Synth wall time of the same fleet written with cdktf-nixos's constructs and with bare @cdktf/provider-aws
 * resources: 3 hosts (the size of examples/fleet) and 100 hosts, median of BENCH_ROUNDS (5) fresh processes each.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordTable } from "./results";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TSX = join(__dirname, "..", "node_modules", ".bin", "tsx");

function synthMs(variant: string, hosts: number): number {
  const out = mkdtempSync(join(tmpdir(), "synth-bench-"));
  try {
    const started = process.hrtime.bigint();
    const result = spawnSync(TSX, [join(__dirname, "synth-app.ts"), variant, String(hosts), out], { stdio: ["ignore", "ignore", "inherit"] });
    if (result.status !== 0) throw new Error(`synth of ${variant} × ${hosts} failed`);
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const rows: string[][] = [];
for (const hosts of [3, 100]) {
  const constructs: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    constructs.push(synthMs("constructs", hosts));
    bare.push(synthMs("bare", hosts));
  }
  const [c, b] = [median(constructs), median(bare)];
  rows.push([hosts === 3 ? "3 (the size of examples/fleet)" : String(hosts), `${(c / 1000).toFixed(2)} s`, `${(b / 1000).toFixed(2)} s`, `${(c / b).toFixed(2)}×`]);
  console.log(`${hosts} hosts done`);
}
recordTable("synth", {
  header: ["hosts", "constructs", "bare @cdktf/provider-aws", "ratio"],
  rows,
  conditions: `app process wall time, median of ${ROUNDS}`,
});
