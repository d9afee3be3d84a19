/**
 * Time as the deploy engine sees it: injected (HostDependencies.clock) so that every deadline and poll of a deployment
 * runs on virtual time in unit tests, which then never wait.
 */
export interface Clock {
  /** Milliseconds since the epoch (or since the clock's own start). */
  now(): number;
  /**
   * A timer; `cancel` drops it. A wait (`keepsAlive`) keeps the process running until it fires; a deadline does not
   * (the work it bounds does, while it runs).
   */
  timer(ms: number, options?: { readonly keepsAlive?: boolean }): { readonly elapsed: Promise<void>; cancel(): void };
}

/** The machine's clock. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  timer(ms, options = {}) {
    let handle: NodeJS.Timeout | undefined;
    const elapsed = new Promise<void>((resolve) => {
      handle = setTimeout(resolve, Math.max(ms, 0));
      // a deadline must not hold the process once its work is done; a wait must (nothing else may be running then)
      if (options.keepsAlive !== true) handle.unref();
    });
    return { elapsed, cancel: () => clearTimeout(handle) };
  },
};

/** Waits `ms`; the process stays alive meanwhile (between two polls of a host nothing else may hold it). */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return clock.timer(ms, { keepsAlive: true }).elapsed;
}

/** Resolves like `promise`, or rejects once `ms` have passed on `clock`. */
export function withDeadline<T>(clock: Clock, promise: Promise<T>, ms: number): Promise<T> {
  const timer = clock.timer(ms);
  const deadline = timer.elapsed.then((): never => {
    throw new Error(`no answer within ${ms / 1000} s`);
  });
  return Promise.race([promise, deadline]).finally(() => timer.cancel());
}
