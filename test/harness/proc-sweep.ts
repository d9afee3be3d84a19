import { readFile, readdir } from "node:fs/promises";

/** A process whose command line or environment held a needle. */
export interface ProcHit {
  readonly pid: number;
  readonly where: "cmdline" | "environ";
  readonly cmdline: string;
}

export interface ProcSweep {
  /** Stops sweeping; resolves with every hit and how many sweeps of /proc were made. */
  stop(): Promise<{ hits: ProcHit[]; sweeps: number }>;
}

/**
 * Reads every process's argv and environment over and over (asynchronously, so servers in the test's event loop keep
 * answering) until stopped, recording any that contains one of `needles`. What `ps` or another local user could see.
 */
export function startProcSweep(needles: readonly string[]): ProcSweep {
  const hits: ProcHit[] = [];
  let sweeps = 0;
  let stopped = false;
  const seen = new Set<string>();
  const sweep = async () => {
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      for (const where of ["cmdline", "environ"] as const) {
        const text = await readFile(`/proc/${entry}/${where}`, "latin1").catch(() => "");
        if (!needles.some((n) => text.includes(n))) continue;
        const key = `${entry}/${where}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const cmdline = (await readFile(`/proc/${entry}/cmdline`, "latin1").catch(() => "")).replace(/\0/g, " ");
        hits.push({ pid: Number(entry), where, cmdline });
      }
    }
    sweeps++;
  };
  const loop = (async () => {
    while (!stopped) {
      await sweep();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { hits, sweeps };
    },
  };
}
