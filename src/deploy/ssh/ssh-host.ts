import type { StoreSource } from "../../nix/store-source";
import { randomBytes } from "node:crypto";
import { shellQuote } from "../../shell";
import {
  activationCommands,
  CONFIRM_DIR,
  confirmedActivationScript,
  INSPECT_COMMAND,
  parseInspection,
  startConfirmedActivationCommand,
  type ActivationContext,
} from "../activation";
import { ActivateError, ConfirmError, ConnectError, CopyError } from "../errors";
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
    if (options.confirmTimeoutSeconds !== undefined && (action === "switch" || action === "test")) {
      return this.activateConfirmed(toplevel, action, before, context, options.confirmTimeoutSeconds);
    }
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
    return activationReport(action, toplevel, before, await this.currentSystem(), output.join(""));
  }

  async close(): Promise<void> {
    this.connection.close();
  }

  /**
   * Activates in the background on the target, then confirms over a new connection: a system that locks us out
   * (sshd, firewall, network) is rolled back by the target itself when the confirmation does not come.
   */
  private async activateConfirmed(
    toplevel: string,
    action: Action,
    before: TargetSystem,
    context: ActivationContext,
    timeoutSeconds: number,
  ): Promise<ActivationReport> {
    const state = `${CONFIRM_DIR}/${randomBytes(6).toString("hex")}`;
    const id = state.slice(CONFIRM_DIR.length + 1);
    const start = startConfirmedActivationCommand(confirmedActivationScript(id, toplevel, action, before, context, timeoutSeconds), context);
    const started = await this.run(start);
    if (started.exitCode !== 0) {
      throw new ActivateError(`could not start '${action}' of ${toplevel} on ${this.name}`, { command: start, stderr: started.stderr, exitCode: started.exitCode });
    }
    const status = await this.waitForStatus(`${state}.status`, timeoutSeconds);
    if (status !== undefined && status !== "0") {
      const log = await this.run(`cat ${state}.log`);
      throw new ActivateError(`'${action}' of ${toplevel} on ${this.name} exited with code ${status}`, {
        command: `${toplevel}/bin/switch-to-configuration ${action}`,
        stderr: log.stdout,
        exitCode: Number(status),
      });
    }
    const previous = before.currentSystem ?? before.profileSystem ?? "its previous system";
    let confirmation: SshConnection;
    try {
      confirmation = await SshConnection.open({ ...this.options, acceptNewHostKey: false, retryForMs: timeoutSeconds * 800 });
    } catch (err) {
      throw new ConfirmError(
        `${this.name} did not take a new SSH connection after '${action}'; it rolls itself back to ${previous} ` +
          `${timeoutSeconds} s after activating`,
        { cause: err, stderr: (err as Error).message, hint: "check what the new configuration does to sshd, the firewall and the network" },
      );
    }
    try {
      const confirm = [...(context.sudo ? ["sudo", "-n", "--"] : []), "touch", `${state}.confirmed`].map(shellQuote).join(" ");
      const confirmed = await confirmation.exec(`${confirm} && ! test -e ${state}.rolled-back && cat ${state}.status`);
      if (confirmed.exitCode !== 0 || confirmed.stdout.trim() !== "0") {
        throw new ConfirmError(`the confirmation reached ${this.name} too late: it rolled back to ${previous}`, {
          command: confirm,
          stderr: confirmed.stderr,
          hint: `raise the confirmation timeout (${timeoutSeconds} s) if activation is slow`,
        });
      }
      const after = parseInspection((await confirmation.exec(INSPECT_COMMAND)).stdout);
      return activationReport(action, toplevel, before, after, (await confirmation.exec(`cat ${state}.log`)).stdout);
    } finally {
      confirmation.close();
    }
  }

  /** Polls for the activation's exit status; undefined when the connection stops answering (the new system may have cut it). */
  private async waitForStatus(file: string, timeoutSeconds: number): Promise<string | undefined> {
    for (;;) {
      const read = await Promise.race([
        this.run(`cat ${file} 2>/dev/null`).catch(() => undefined),
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), timeoutSeconds * 1000).unref()),
      ]);
      if (read === undefined) return undefined;
      if (read.stdout.trim() !== "") return read.stdout.trim();
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
}

function activationReport(action: Action, toplevel: string, before: TargetSystem, after: TargetSystem, output: string): ActivationReport {
  return {
    action,
    previousGeneration: before.profileGeneration,
    newGeneration: after.profileGeneration,
    previousSystem: before.currentSystem,
    newSystem: toplevel,
    output,
  };
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

