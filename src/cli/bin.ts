#!/usr/bin/env node
import { main } from "./program";

// The only place that turns an outcome into the process's exit code.
main(process.argv).then((code) => {
  process.exitCode = code;
});
