/**
 * Synth-time evaluation of a fleet: one Nix evaluation for all deployments of a stack (what NixosDeployment does)
 * against one evaluation per host (what terraform-nixos does), for 1, 10 and 50 hosts of the nixpkgs-lite fixture.
 * Wall time and peak RSS of the Nix processes (GNU time), median of BENCH_ROUNDS (5).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordTable } from "./results";
import { fleetExpression, type FleetMember } from "../src/nix/fleet-evaluation";
import { NIXPKGS_LITE } from "../test/harness/fixture";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

interface Measured {
  seconds: number;
  peakKiB: number;
}

/** One nix-instantiate --eval of `members`, under GNU time. */
function evaluate(members: FleetMember[]): Measured {
  const result = spawnSync("/usr/bin/time", ["-f", "%e %M", "nix-instantiate", "--eval", "--strict", "--json", "-I", `nixpkgs=${NIXPKGS_LITE}`, "-"], { encoding: "utf8", input: fleetExpression(members) });
  if (result.status !== 0) throw new Error(result.stderr);
  const [seconds, peakKiB] = result.stderr.trim().split("\n").at(-1)!.split(" ").map(Number);
  return { seconds, peakKiB };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = mkdtempSync(join(tmpdir(), "fleet-eval-"));
try {
  const rows: string[][] = [];
  for (const hosts of [1, 10, 50]) {
    const members: FleetMember[] = Array.from({ length: hosts }, (_, i) => {
      const file = join(dir, `host${i}.nix`);
      writeFileSync(file, `{ config, pkgs, peer, ... }: { networking.hostName = "host${i}"; environment.etc.peer.text = peer; users.users.u${i} = { uid = ${1000 + i}; }; }\n`);
      return { name: `host${i}`, configuration: file, nixPath: { nixpkgs: NIXPKGS_LITE }, moduleArgs: { peer: `10.0.0.${i}` } };
    });
    const one: Measured[] = [];
    const each: { seconds: number; peakKiB: number }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      one.push(evaluate(members));
      const separate = members.map((m) => evaluate([m]));
      each.push({ seconds: separate.reduce((s, m) => s + m.seconds, 0), peakKiB: separate.reduce((s, m) => s + m.peakKiB, 0) });
    }
    const [oneS, oneM] = [median(one.map((m) => m.seconds)), median(one.map((m) => m.peakKiB))];
    const [eachS, eachM] = [median(each.map((m) => m.seconds)), median(each.map((m) => m.peakKiB))];
    rows.push([String(hosts), `${oneS.toFixed(2)} s / ${(oneM / 1024).toFixed(0)} MiB`, `${eachS.toFixed(2)} s / ${(eachM / 1024).toFixed(0)} MiB`,
      `${(oneS / eachS).toFixed(2)}×`, `${(oneM / eachM).toFixed(2)}×`]);
  }
  recordTable("fleet-eval", {
    header: ["hosts", "one evaluation: wall / peak RSS", "one per host: wall (sum) / peak RSS (sum of processes)", "ratio wall", "ratio memory"],
    rows,
    conditions: `nixpkgs-lite hosts, wall time and peak RSS of the Nix processes (GNU time), median of ${ROUNDS}`,
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
