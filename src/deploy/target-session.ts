import type { Host, RunResult } from "./host";

import { withDeadline, type Clock } from "./clock";
import type { DeployEvent } from "./request";

/**
 * The connection to the target during activation: reads are bounded, and a lost or silent connection is replaced by
 * a new one (same host key checks) for as long as the caller allows. Only read-only commands go through `read`, so
 * repeating one after a reconnect is harmless.
 */
export class TargetSession {
  constructor(public host: Host, private readonly emit: (event: DeployEvent) => void, private readonly clock: Clock) {}

  /**
   * Runs `command`, reconnecting while the host cannot be reached, until `reconnectUntil()` (epoch ms, asked when
   * the connection fails).
   */
  async read(command: string, options: { readBoundMs: number; reconnectUntil: () => number }): Promise<RunResult> {
    for (;;) {
      let failure: Error;
      try {
        return await withDeadline(this.clock, this.host.run(command), options.readBoundMs);
      } catch (err) {
        failure = err as Error;
      }
      await this.replace(failure, options.reconnectUntil());
    }
  }

  /** A new connection instead of the current one, which failed with `failure`. */
  async replace(failure: Error, until: number): Promise<void> {
    const retryForMs = until - this.clock.now();
    if (retryForMs <= 0) throw new Unreachable(failure.message);
    this.emit({ type: "reconnecting", reason: failure.message });
    let next: Host;
    try {
      next = await this.host.reconnect({ retryForMs });
    } catch (err) {
      throw new Unreachable(`${failure.message}; reconnecting failed: ${(err as Error).message}`);
    }
    await this.adopt(next);
  }

  /** Continues on `next` (a newer connection to the same host) and closes the current one. */
  async adopt(next: Host): Promise<void> {
    const old = this.host;
    this.host = next;
    await old.close().catch(() => undefined);
  }

  close(): Promise<void> {
    return this.host.close();
  }
}

/** The host could not be reached again within the allowed time. */
export class Unreachable extends Error {}

