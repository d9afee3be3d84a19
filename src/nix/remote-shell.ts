import type { Readable, Writable } from "node:stream";

/** A command running on the target: its three streams and its end. */
export interface RemoteProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** The exit code (128 + n after signal n), or null when the channel closed without one (the connection was lost). */
  readonly exited: Promise<number | null>;
  /** Ends its input and releases the channel. */
  close(): void;
  /** Closes the channel at once (a command that will not stop by itself): `exited` then resolves with null. */
  abort(): void;
}

/** What copying to a target needs from a connection to it: to start commands there (an SSH connection, in practice). */
export interface RemoteShell {
  /** How the target is named in messages. */
  readonly name: string;
  /** Starts a command; resolves once it runs. */
  start(command: string): Promise<RemoteProcess>;
}

/** Calls `onLine` for every line of a remote process's output (the last one even without a newline), then `onEnd`. */
export function splitLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void, onEnd: () => void = () => undefined): void {
  let partial = "";
  stream.on("data", (c: Buffer) => {
    const lines = (partial + c.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  });
  stream.on("end", () => {
    if (partial !== "") onLine(partial);
    onEnd();
  });
}
