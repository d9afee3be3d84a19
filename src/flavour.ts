import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * The two packages built from these sources, by the name the build writes into their package.json: cdktf-nixos (for
 * CDK for Terraform) and cdktn-nixos (for CDK Terrain, `npm run build:cdktn`). Their code is the same; what differs is
 * which CDK CLI a user's project synthesizes with, and so what the messages tell them to run.
 */
export const FLAVOURS = {
  "cdktf-nixos": { cdkCli: "cdktf", cdkCliPackage: "cdktf-cli" },
  "cdktn-nixos": { cdkCli: "cdktn", cdkCliPackage: "cdktn-cli" },
} as const;

export type PackageName = keyof typeof FLAVOURS;

export interface Flavour {
  readonly packageName: PackageName;
  /** The directory of the installed package (the one with package.json and lib/). */
  readonly packageDir: string;
  readonly version: string;
  /** The CDK CLI of a project that uses this package: `cdktf` or `cdktn`. */
  readonly cdkCli: "cdktf" | "cdktn";
  /** The npm package of that CLI. */
  readonly cdkCliPackage: "cdktf-cli" | "cdktn-cli";
}

let found: Flavour | undefined;

/** This installation's package, found above this module (in lib/ when installed, src/ in this repository). */
export function flavour(): Flavour {
  if (found !== undefined) return found;
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
    if (pkg.name !== undefined && Object.hasOwn(FLAVOURS, pkg.name)) {
      const packageName = pkg.name as PackageName;
      found = { packageName, packageDir: dir, version: pkg.version ?? "0.0.0", ...FLAVOURS[packageName] };
      return found;
    }
  }
  throw new Error(`cannot find the cdktf-nixos (or cdktn-nixos) package.json above ${__dirname}`);
}

/** The CDK CLI a message should tell the user to run: `cdktf` or `cdktn`. */
export function cdkCli(): "cdktf" | "cdktn" {
  return flavour().cdkCli;
}
