#!/usr/bin/env node
import { ignoreClosedPipes } from "./closed-pipe";
import { main } from "./program";

ignoreClosedPipes(process.stdout, process.stderr);
// The AWS SDK warns on Node < 22 that its releases after January 2027 will need Node 22; the version we ship does not,
// and its nine lines would land in the middle of a push's output (once per process, when S3 or EC2 is first used).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// The only place that turns an outcome into the process's exit code.
main(process.argv).then((code) => {
  process.exitCode = code;
  // interrupted: what the hosts were left in has been said; the work it stopped may still hold connections
  if (code > 128) process.exit(code);
  // The outcome has been reported: a signal now (Terraform stopping, a late Ctrl-C) must not turn it into another.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => undefined);
  // Everything has been reported: nothing left behind (a socket draining towards a host that stopped answering)
  // may keep the process, and a Terraform run waiting for it, alive.
  setTimeout(() => process.exit(code), 2000).unref();
});
