/**
 * A reader that went away (`cdktf-nixos push --dry-run | head -1`) ends our output there, quietly: without a listener
 * Node turns the write's EPIPE into an uncaught exception with a stack trace. The run itself goes on (hosts may be in
 * the middle of a deployment) and ends with its own exit code; other write errors stay errors.
 */
export function ignoreClosedPipes(...streams: NodeJS.WritableStream[]): void {
  for (const stream of streams) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") throw err;
    });
  }
}
