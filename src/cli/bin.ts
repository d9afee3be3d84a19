#!/usr/bin/env node
import { main } from "./program";

// The only place that turns an outcome into a process exit code.
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`cdktf-nixos: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
