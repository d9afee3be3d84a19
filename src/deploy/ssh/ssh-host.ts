import { copyClosure, planClosureCopy, type CopyPlan, type CopyReport } from "../../nix/serve/copy";
import { ServeSession } from "../../nix/serve/session";
import type { StoreSource } from "../../nix/store-source";
import type { CopyOptions, Host, ReconnectOptions, RunOptions, RunResult } from "../host";
import { SshConnection, type SshOptions } from "./connection";

/** A target reached over ssh2: transport only. The only Host implementation that knows about SSH. */
export class SshHost implements Host {
  readonly name: string;

  private constructor(private readonly connection: SshConnection, private readonly options: SshOptions) {
    this.name = connection.name;
  }

  static async connect(options: SshOptions): Promise<SshHost> {
    return new SshHost(await SshConnection.open(options), options);
  }

  run(command: string, options: RunOptions = {}): Promise<RunResult> {
    return this.connection.exec(command, options.stdin);
  }

  copyClosure(source: StoreSource, paths: readonly string[], options: CopyOptions = {}): Promise<CopyReport> {
    // The login user's own Nix: through the daemon for non-root users, which then needs them in trusted-users.
    return this.withServeSession("nix-store --serve --write", (session) =>
      copyClosure({ source, target: session, paths, useSubstitutes: options.useSubstitutes, onProgress: options.onProgress }));
  }

  planCopy(source: StoreSource, paths: readonly string[]): Promise<CopyPlan> {
    // without --write: the remote store refuses anything but queries
    return this.withServeSession("nix-store --serve", (session) => planClosureCopy(source, session, paths));
  }

  private async withServeSession<T>(command: string, use: (session: ServeSession) => Promise<T>): Promise<T> {
    const remote = await this.connection.openChannel(command);
    let session: ServeSession | undefined;
    try {
      session = await ServeSession.open({
        input: remote.stdin,
        output: remote.stdout,
        errors: remote.stderr,
        exited: remote.exited,
        command: `ssh ${this.name} ${command}`,
        close: () => remote.close(),
      });
      return await use(session);
    } finally {
      if (session) await session.close();
      else remote.close();
    }
  }

  /** The host key was verified on first contact; a new connection must present the same, recorded key. */
  async reconnect(options: ReconnectOptions): Promise<Host> {
    return SshHost.connect({ ...this.options, acceptNewHostKey: false, retryForMs: options.retryForMs });
  }

  async close(): Promise<void> {
    this.connection.close();
  }
}
