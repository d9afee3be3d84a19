import { PassThrough, type Duplex, type Readable } from "node:stream";
import { shellQuote } from "../../shell";
import type { CopyPlan, CopyReport } from "../../nix/serve/copy";
import { copyToRemote, planRemoteCopy } from "../../nix/serve/remote-copy";
import { RemoteStore } from "../../nix/serve/remote-store";
import type { StoreSource } from "../../nix/store-source";
import type { RemoteProcess, RemoteShell } from "../../nix/remote-shell";
import type { CopyOptions, Host, ReconnectOptions, RunOptions, RunResult } from "../host";
import { SshConnection, type SshOptions } from "./connection";

/** A target reached over ssh2: transport only. The only Host implementation that knows about SSH. */
export class SshHost implements Host {
  readonly name: string;
  private readonly shell: RemoteShell;

  private constructor(private readonly connection: SshConnection, private readonly options: SshOptions) {
    this.name = connection.name;
    this.shell = { name: this.name, start: (command) => connection.openChannel(command) };
  }

  static async connect(options: SshOptions): Promise<SshHost> {
    return new SshHost(await SshConnection.open(options), options);
  }

  /** Bytes this connection has written to its TCP socket (SSH framing and encryption included). */
  get socketBytesWritten(): number {
    return this.connection.socketBytesWritten;
  }

  run(command: string, options: RunOptions = {}): Promise<RunResult> {
    return this.connection.exec(command, options.stdin, { timeoutMs: options.timeoutMs, maxOutputBytes: options.maxOutputBytes });
  }

  copyClosure(source: StoreSource, paths: readonly string[], options: CopyOptions = {}): Promise<CopyReport> {
    // The login user's own Nix: through the daemon for non-root users, which then needs them in trusted-users.
    return copyToRemote({
      source,
      shell: this.shell,
      paths,
      useSubstitutes: options.useSubstitutes,
      compress: options.compress,
      maxChannels: options.maxChannels,
      replyTimeoutMs: options.replyTimeoutMs,
      onProgress: options.onProgress,
    });
  }

  planCopy(source: StoreSource, paths: readonly string[], options: Pick<CopyOptions, "replyTimeoutMs"> = {}): Promise<CopyPlan> {
    // without --write: the remote store refuses anything but queries
    return planRemoteCopy(source, this.shell, paths, options.replyTimeoutMs);
  }

  async readFile(path: string, range: { readonly start: number; readonly length: number }): Promise<Readable> {
    // tail seeks to the start of a regular file; head stops after the range
    const remote = await this.shell.start(`tail -c +${range.start + 1} -- ${shellQuote(path)} | head -c ${range.length}`);
    remote.stdin.end();
    return exactBytes(remote, range.length, `reading ${path} (bytes ${range.start}-${range.start + range.length - 1}) on ${this.name}`);
  }

  openStore(options: Pick<CopyOptions, "replyTimeoutMs"> = {}): Promise<StoreSource> {
    return RemoteStore.open(this.shell, options.replyTimeoutMs);
  }

  forwardTcp(address: string, port: number): Promise<Duplex> {
    return this.connection.forwardTcp(address, port);
  }

  /** The host key was verified on first contact; a new connection must present the same, recorded key. */
  async reconnect(options: ReconnectOptions): Promise<Host> {
    return SshHost.connect({ ...this.options, acceptNewHostKey: false, retryForMs: options.retryForMs });
  }

  async close(): Promise<void> {
    this.connection.close();
  }
}

const STDERR_BYTES = 4096;

/** The command's output, failing (with its stderr) unless it exited 0 after exactly `length` bytes. */
function exactBytes(remote: RemoteProcess, length: number, what: string): Readable {
  const out = new PassThrough();
  let received = 0;
  let stderr = "";
  remote.stderr.on("data", (chunk: Buffer) => {
    if (stderr.length < STDERR_BYTES) stderr += chunk.toString("utf8").slice(0, STDERR_BYTES - stderr.length);
  });
  remote.stdout.on("data", (chunk: Buffer) => {
    received += chunk.length;
    if (received > length) {
      remote.abort();
      out.destroy(new Error(`${what}: more than ${length} bytes arrived`));
    } else if (!out.write(chunk)) {
      remote.stdout.pause();
      out.once("drain", () => remote.stdout.resume());
    }
  });
  void (async () => {
    // "close" too: a channel the connection loses may close without ending its stream
    await new Promise<void>((resolve) => {
      remote.stdout.once("end", resolve);
      remote.stdout.once("close", resolve);
    });
    const code = await remote.exited;
    if (code !== 0 || received !== length) {
      out.destroy(new Error(`${what}: ${received} of ${length} bytes arrived, exit ${code ?? "(connection lost)"}${stderr.trim() ? `: ${stderr.trim()}` : ""}`));
    } else {
      out.end();
    }
    remote.close();
  })();
  // a reader that stops early (a failed upload) ends the command
  out.on("close", () => {
    if (received < length) remote.abort();
  });
  return out;
}
