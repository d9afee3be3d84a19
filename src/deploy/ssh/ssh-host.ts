import type { StoreSource } from "../../nix/store-source";
import { activationCommands, INSPECT_COMMAND, parseInspection, type ActivationContext } from "../activation";
import { ActivateError, ConnectError, CopyError } from "../errors";
import type { Action, ActivateOptions, ActivationReport, CopyOptions, CopyReport, Host, RunResult, TargetSystem } from "../host";
import { copyClosure } from "../nix-serve/copy";
import { ServeError, ServeSession } from "../nix-serve/session";
import { SshConnection, type SshOptions } from "./connection";

/** A target reached over ssh2. The only Host implementation that knows about SSH. */
export class SshHost implements Host {
  readonly name: string;
  private inspected?: TargetSystem & { readonly nix: boolean };

  private constructor(private readonly connection: SshConnection, private readonly options: SshOptions) {
    this.name = connection.name;
  }

  static async connect(options: SshOptions): Promise<SshHost> {
    return new SshHost(await SshConnection.open(options), options);
  }

  private get sudo(): boolean {
    return this.options.user !== "root";
  }

  run(command: string): Promise<RunResult> {
    return this.connection.exec(command);
  }

  async currentSystem(): Promise<TargetSystem> {
    const result = await this.run(INSPECT_COMMAND);
    if (result.exitCode !== 0) {
      throw new ConnectError(`could not inspect ${this.name}`, { command: INSPECT_COMMAND, stderr: result.stderr, exitCode: result.exitCode });
    }
    const inspected = parseInspection(result.stdout);
    if (!inspected.nix) {
      throw new ConnectError(`${this.name} has no nix-store on its PATH`, {
        hint: "the target must be a NixOS host (or have Nix installed) for the closure to be copied to it",
      });
    }
    this.inspected = inspected;
    return inspected;
  }

  async copyClosure(source: StoreSource, paths: readonly string[], options: CopyOptions = {}): Promise<CopyReport> {
    // The login user's own Nix: through the daemon for non-root users, which then needs them in trusted-users.
    const command = "nix-store --serve --write";
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
      return await copyClosure({ source, target: session, paths, useSubstitutes: options.useSubstitutes, onProgress: options.onProgress });
    } catch (err) {
      if (err instanceof ServeError) {
        throw new CopyError(err.message, { command: err.command, stderr: err.stderr, exitCode: err.exitCode ?? undefined, hint: copyHint(err.stderr, this.options.user) });
      }
      throw err;
    } finally {
      if (session) await session.close();
      else remote.close();
    }
  }

  async activate(toplevel: string, action: Action, options: ActivateOptions = {}): Promise<ActivationReport> {
    const before = this.inspected ?? (await this.currentSystem());
    const context: ActivationContext = { sudo: this.sudo, systemd: before.systemd, installBootloader: options.installBootloader };
    const output: string[] = [];
    for (const command of activationCommands(toplevel, action, context)) {
      const result = await this.run(command);
      output.push(result.stdout, result.stderr);
      if (result.exitCode !== 0) {
        throw new ActivateError(`'${action}' of ${toplevel} on ${this.name} exited with code ${result.exitCode}`, {
          command,
          stderr: result.stderr,
          exitCode: result.exitCode,
          hint: this.sudo && /sudo: .*password/.test(result.stderr)
            ? `${this.options.user} needs passwordless sudo for nix-env and switch-to-configuration on the target`
            : undefined,
        });
      }
    }
    const after = await this.currentSystem();
    return {
      action,
      previousGeneration: before.profileGeneration,
      newGeneration: after.profileGeneration,
      previousSystem: before.currentSystem,
      newSystem: toplevel,
      output: output.join(""),
    };
  }

  async close(): Promise<void> {
    this.connection.close();
  }
}

function copyHint(stderr: string, user: string): string | undefined {
  if (stderr.includes("lacks a valid signature")) {
    return `the target's Nix does not trust '${user}' to import unsigned paths: add it to nix.settings.trusted-users ` +
      "on the target, sign the closure (nix store sign) with a key the target trusts, or deploy as root";
  }
  if (stderr.includes("importing paths is not allowed")) return "the remote nix-store was started without --write";
  if (/command not found|No such file/.test(stderr)) return "nix-store is not on the PATH of non-interactive SSH sessions on the target";
  return undefined;
}

