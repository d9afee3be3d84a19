import type { Clock } from "../../src/deploy/clock";

/**
 * Virtual time for the deploy engine's unit tests: a timer fires only once nothing else can happen (every promise
 * has settled and the event loop has turned), and then time jumps to it. A deadline of 10 minutes passes at once; a
 * fake host's answer always comes before any timer, as it would on a fast host.
 */
export class VirtualClock implements Clock {
  private time = 1_700_000_000_000;
  private readonly timers: Array<{ due: number; seq: number; fire: () => void }> = [];
  private seq = 0;
  private scheduled = false;

  now(): number {
    return this.time;
  }

  timer(ms: number): { readonly elapsed: Promise<void>; cancel(): void } {
    const entry: { due: number; seq: number; fire: () => void } = { due: this.time + Math.max(ms, 0), seq: this.seq++, fire: () => undefined };
    const elapsed = new Promise<void>((resolve) => {
      entry.fire = resolve;
    });
    this.timers.push(entry);
    this.schedule();
    return {
      elapsed,
      cancel: () => {
        const index = this.timers.indexOf(entry);
        if (index >= 0) this.timers.splice(index, 1);
      },
    };
  }

  /** Fires the earliest timer once the event loop is idle (after every pending promise job and I/O callback). */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.timers.length === 0) return;
      this.timers.sort((a, b) => a.due - b.due || a.seq - b.seq);
      const next = this.timers.shift()!;
      this.time = Math.max(this.time, next.due);
      next.fire();
      if (this.timers.length > 0) this.schedule();
    });
  }
}
