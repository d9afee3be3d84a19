import type { FailedUnit } from "../errors";
import { ACTIVATION_DIR, BOOT_ID, parseBootId, parseInspection, scriptAliveTest, type TargetSystem } from "./inspection";

/**
 * The activation protocol's state files, `ACTIVATION_DIR/<id>.<name>`: the one definition that the script builder
 * (activation.ts) writes by, the reader below reads by, and the test fake answers from. A file the reader reads has
 * the pattern of what the script writes into it; anything else there was not written by an activation.
 */
export const STATE_FILES = {
  /** `PID STARTTIME` of the script, written first: whoever sees the log can tell whether the script still runs. */
  pid: { read: false },
  /** Everything the script and switch-to-configuration print. */
  log: { read: false },
  /** Who holds the lock this activation waits for. */
  "lock-wait": { read: true, value: /^[\x20-\x7e]{1,300}$/ },
  /** The host's state when the activation got the lock (what a rollback goes back to). */
  started: { read: true, value: /^profile=\S* current=\S* profileSystem=\S*$/ },
  /** The host's state right after activating, before any rollback. */
  after: { read: true, value: /^profile=\S* current=\S* profileSystem=\S*$/ },
  /** `EPOCH TOPLEVEL`: until when (host clock) a confirmed activation may be confirmed. */
  deadline: { read: false },
  /** switch-to-configuration's exit code, or a word (STATUS_WORDS). */
  status: { read: true, value: /^(\d{1,3}|locked|up-to-date|missing-tool:[a-z-]{1,32})$/ },
  /** systemd units in the failed state right after activating (before any rollback), space-separated; a systemd host's only. */
  "failed-units": { read: true, value: /^[A-Za-z0-9@._:\\-]{1,256}( [A-Za-z0-9@._:\\-]{1,256}){0,19}$/ },
  /** The failed units' last journal lines: `== UNIT` then its lines, per unit. */
  journal: { read: false },
  /** The rollback's exit code, or `nothing` when there was nothing to go back to. */
  "rolled-back": { read: true, value: /^(\d{1,3}|nothing)$/ },
  /** A directory: made (atomically) by whoever decides a confirmed activation first — the deployer or the script. */
  decided: { read: false },
  /** Made by the deployer when a health check failed: the script stops waiting for the confirmation and rolls back. */
  reject: { read: false },
  /** The script finished and released the lock. */
  done: { read: false },
} as const;
export type StateFileName = keyof typeof STATE_FILES;
type ReadFileName = { [K in StateFileName]: (typeof STATE_FILES)[K]["read"] extends true ? K : never }[StateFileName];
const READ_FILES = (Object.keys(STATE_FILES) as StateFileName[]).filter((name): name is ReadFileName => STATE_FILES[name].read);

/** The words `status` holds besides an exit code. */
export const STATUS_WORDS = { locked: "locked", upToDate: "up-to-date", missingTool: "missing-tool:" } as const;

/** `ACTIVATION_DIR/<id>.<name>`; `id` may be a shell word such as `"$s"`. */
export function stateFile(id: string, name: StateFileName): string {
  return `${ACTIVATION_DIR}/${id}.${name}`;
}

/** What a state file's first line may be read as: the first this many bytes. */
export const STATE_LINE_BYTES = 4096;

/** How the activation ended, as its status file says. */
export type ActivationStatus =
  | { readonly kind: "exited"; readonly code: number }
  /** The lock never came within the lock timeout: nothing was changed. */
  | { readonly kind: "locked" }
  /** Once the lock came, the host already was what the action would make it: nothing was changed. */
  | { readonly kind: "up-to-date" }
  /** The host lacks a tool the script needs: nothing was changed. */
  | { readonly kind: "missing-tool"; readonly tool: string };

/** What the script's own rollback did. */
export type RollbackOutcome = { readonly kind: "exited"; readonly code: number } | { readonly kind: "nothing" };

export type RecordedState = Pick<TargetSystem, "currentSystem" | "profileGeneration" | "profileSystem">;


/** How many journal lines per failed unit the script records, and how many failed units at most. */
export const JOURNAL_LINES_PER_UNIT = 10;
export const FAILED_UNITS_RECORDED = 20;
/**
 * The host's failed units, one name per line: our own activation units aside, only what a unit name can be, at most
 * FAILED_UNITS_RECORDED. The one listing the activation script, the systemd health check and `status` run.
 */
export function failedUnitsCommand(options: { readonly servicesOnly?: boolean } = {}): string {
  return `systemctl list-units --failed --plain --no-legend${options.servicesOnly === true ? " --type=service" : ""} 2>/dev/null | awk '{ print $1 }' | ` +
    `grep -v '^cdktf-nixos-activation-' | grep -E '^[A-Za-z0-9@._:-]{1,256}$' | head -n ${FAILED_UNITS_RECORDED}`;
}

/** `== UNIT` and the last journal lines of the unit named in `$u`: what parseJournal reads. */
export const UNIT_JOURNAL_COMMAND =
  `echo "== $u"; journalctl -u "$u" -n ${JOURNAL_LINES_PER_UNIT} --no-pager -o cat 2>/dev/null | cut -c1-300 | tail -n ${JOURNAL_LINES_PER_UNIT}`;

/** The journal file is read as its last this many bytes. */
export const JOURNAL_TAIL_BYTES = 16 * 1024;

/** Reads the journal file (`== UNIT` headers, then lines) into the failed units named in `names`, in their order. */
export function parseJournal(names: readonly string[], text: string): FailedUnit[] {
  const lines = new Map<string, string[]>(names.map((name) => [name, []]));
  let current: string[] | undefined;
  for (const line of text.split("\n")) {
    const header = /^== (\S+)$/.exec(line);
    if (header) current = lines.get(header[1]!);
    else if (current !== undefined && line !== "") current.push(line);
  }
  return names.map((name) => ({ name, journal: (lines.get(name) ?? []).slice(-JOURNAL_LINES_PER_UNIT) }));
}

/** What an activation has got to, as its state files on the target tell. */
export interface ActivationState {
  /** The script ran (its log exists). */
  readonly running: boolean;
  /** The lock holder it waits for, while it waits. */
  readonly waitingFor?: string;
  /** The state it started from, read under the lock. */
  readonly before?: RecordedState;
  /** The state activation left (before any rollback), read under the lock. */
  readonly after?: RecordedState;
  readonly status?: ActivationStatus;
  /** systemd units that were failed right after activating. */
  readonly failedUnits?: readonly string[];
  readonly rolledBack?: RollbackOutcome;
  /** The activation decided its confirmation (confirmed or rolling back). */
  readonly decided: boolean;
  /** The script finished and released the lock. */
  readonly done: boolean;
  /** The script itself still runs (it may be waiting, activating, or counting down to a rollback). */
  readonly alive: boolean;
  /** The host's boot when the state was read (BOOT_ID). */
  readonly bootId?: string;
  /** State files whose content no activation writes (left out above): the host's state cannot be told from them. */
  readonly garbled: readonly string[];
}

/**
 * Prints one `name content` line per state file that exists, then the words `alive`, `boot ID`, `running`, `decided`,
 * `done` as they hold. Read-only, so it is safe to repeat after a reconnect.
 */
export function readStateCommand(id: string): string {
  const file = (name: StateFileName) => stateFile(id, name);
  return [
    // done is looked at first and said last: the script writes every file before it touches done, so "done" means
    // the files read after it are final (read the other way round, a script that wrote rolled-back and touched done
    // between the reads looked done with no rollback outcome). One that ends during the read looks gone, not done, to
    // that one read: the follower believes "gone" only when two reads in a row say it.
    `d=; [ -e ${file("done")} ] && d=1`,
    `for f in ${READ_FILES.join(" ")}; do [ -s ${stateFile(id, "$f" as StateFileName)} ] && echo "$f $(head -c ${STATE_LINE_BYTES} ${stateFile(id, "$f" as StateFileName)} | head -n 1)"; done`,
    // running, then alive: the script writes its pid file before its log, so once the log was seen the pid file can
    // tell whether it runs (read the other way round, a script just starting looked gone)
    `[ -e ${file("log")} ] && echo running`,
    `${scriptAliveTest(`${ACTIVATION_DIR}/${id}`)} && echo alive`,
    `echo boot ${BOOT_ID}`,
    `[ -d ${file("decided")} ] && echo decided`,
    `[ -n "$d" ] && echo done`,
    "true",
  ].join("; ");
}

/** What readStateCommand prints for `state`: the writer the test fake answers with (parseActivationState reads it). */
export function renderActivationState(state: Omit<ActivationState, "garbled">): string {
  const record = (r: RecordedState) => `profile=system-${r.profileGeneration ?? ""}-link current=${r.currentSystem ?? ""} profileSystem=${r.profileSystem ?? ""}`;
  const status = state.status === undefined ? undefined : state.status.kind === "exited" ? String(state.status.code)
    : state.status.kind === "missing-tool" ? `${STATUS_WORDS.missingTool}${state.status.tool}` : STATUS_WORDS[state.status.kind === "locked" ? "locked" : "upToDate"];
  const rolledBack = state.rolledBack === undefined ? undefined : state.rolledBack.kind === "nothing" ? "nothing" : String(state.rolledBack.code);
  const lines: Record<ReadFileName, string | undefined> = {
    "lock-wait": state.waitingFor,
    started: state.before === undefined ? undefined : record(state.before),
    after: state.after === undefined ? undefined : record(state.after),
    status,
    "failed-units": state.failedUnits === undefined || state.failedUnits.length === 0 ? undefined : state.failedUnits.join(" "),
    "rolled-back": rolledBack,
  };
  return [
    ...READ_FILES.flatMap((name) => (lines[name] === undefined ? [] : [`${name} ${lines[name]}`])),
    ...(state.alive ? ["alive"] : []),
    ...(state.bootId !== undefined ? [`boot ${state.bootId}`] : []),
    ...(state.running ? ["running"] : []),
    ...(state.decided ? ["decided"] : []),
    ...(state.done ? ["done"] : []),
  ].join("\n");
}

function recordedState(line: string | undefined): RecordedState | undefined {
  if (line === undefined) return undefined;
  const state = parseInspection(line);
  return { currentSystem: state.currentSystem, profileGeneration: state.profileGeneration, profileSystem: state.profileSystem };
}

function parseStatus(value: string | undefined): ActivationStatus | undefined {
  if (value === undefined || value === "") return undefined;
  if (value === STATUS_WORDS.locked) return { kind: "locked" };
  if (value === STATUS_WORDS.upToDate) return { kind: "up-to-date" };
  if (value.startsWith(STATUS_WORDS.missingTool)) return { kind: "missing-tool", tool: value.slice(STATUS_WORDS.missingTool.length) };
  return { kind: "exited", code: Number(value) };
}

export function parseActivationState(output: string): ActivationState {
  const values = new Map<string, string>();
  const garbled: string[] = [];
  for (const line of output.split("\n")) {
    const space = line.indexOf(" ");
    const name = space < 0 ? line.trim() : line.slice(0, space);
    if (name === "") continue;
    const value = space < 0 ? "" : line.slice(space + 1).trim();
    const file = (STATE_FILES as Record<string, { read: boolean; value?: RegExp }>)[name];
    if (file?.value !== undefined && !file.value.test(value)) garbled.push(name);
    else values.set(name, value);
  }
  const rolledBack = values.get("rolled-back");
  return {
    running: values.has("running"),
    waitingFor: values.get("lock-wait"),
    before: recordedState(values.get("started")),
    after: recordedState(values.get("after")),
    status: parseStatus(values.get("status")),
    failedUnits: values.get("failed-units")?.split(" ").filter(Boolean),
    rolledBack: rolledBack === undefined || rolledBack === "" ? undefined : rolledBack === "nothing" ? { kind: "nothing" } : { kind: "exited", code: Number(rolledBack) },
    decided: values.has("decided"),
    done: values.has("done"),
    alive: values.has("alive"),
    bootId: parseBootId(values.get("boot")),
    garbled,
  };
}
