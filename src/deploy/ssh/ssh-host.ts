import type { Duplex } from "node:stream";
import type { CopyPlan, CopyReport } from "../../nix/serve/copy";
import { copyToRemote, planRemoteCopy } from "../../nix/serve/remote-copy";
import { RemoteStore } from "../../nix/serve/remote-store";
import type { StoreSource } from "../../nix/store-source";
import type { RemoteShell } from "../../nix/remote-shell";
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
