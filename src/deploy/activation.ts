import { shellQuote } from "../shell";
import { mayConfirm, mayPruneGenerations, mayRollBack, setsProfile, upToDateRequires, type Action } from "../spec/goal";
import { ACTIVATION_DIR, SYSTEM_PROFILE, scriptAliveTest, type TargetSystem } from "./inspection";
import { SAFE_DIR_FUNCTION } from "./safe-dir";
import { CHECKED_CONFIRM_SECONDS } from "../spec/health-check";
import {
  JOURNAL_TAIL_BYTES, STATE_LINE_BYTES, STATUS_WORDS, UNIT_JOURNAL_COMMAND, failedUnitsCommand, readStateCommand, stateFile,
  type StateFileName,
} from "./activation-state";

export { ACTIVATION_DIR };
export const LOCK_FILE = `${ACTIVATION_DIR}/lock`;
/** Who holds the lock: written by the holder once it has it, read by whoever waits. */
export const LOCK_HOLDER_FILE = `${ACTIVATION_DIR}/lock.holder`;
/**
 * The exit code of the start command when ACTIVATION_DIR is not root's own (another user could point its lock,
 * holder or status files at any file root writes): nothing was started.
 */
export const UNSAFE_STATE_DIR_EXIT = 70;
/**
 * What the last activation that got the lock did, one line (see LAST_ACTIVATION_PATTERN), kept across reboots for
 * `status`: written by the script when it ends, through a directory only root can change.
 */
export const LAST_ACTIVATION_DIR = "/var/lib/cdktf-nixos";
export const LAST_ACTIVATION_FILE = `${LAST_ACTIVATION_DIR}/last-activation`;

/** The activation's log is read as its last this many bytes (a service printing without end cannot fill memory). */
export const LOG_TAIL_BYTES = 64 * 1024;

export interface ActivationContext {
  /** Prefix privileged commands with `sudo -n` (the login user is not root). */
  readonly sudo: boolean;
  /** systemd is PID 1 on the target: the activation runs in its own transient unit. */
  readonly systemd: boolean;
  readonly installBootloader?: boolean;
}

function privileged(context: Pick<ActivationContext, "sudo">, words: readonly string[]): string {
  return [...(context.sudo ? ["sudo", "-n", "--"] : []), ...words].map(shellQuote).join(" ");
}

/** Points the system profile at the new toplevel (a new generation), as `nixos-rebuild switch|boot` does. */
export function setProfileCommand(toplevel: string): string {
  return ["nix-env", "-p", SYSTEM_PROFILE, "--set", toplevel].map(shellQuote).join(" ");
}

/**
 * Runs switch-to-configuration of `system` (a store path, or a shell word such as `"$prev"`) with a clean
 * environment, as root (the activation script's own user): the one form of it, for activating and for rolling back.
 */
export function switchCommand(system: string, action: Action, context: Pick<ActivationContext, "installBootloader">): string {
  const bootloader = context.installBootloader ? "1" : "0";
  const program = system.startsWith('"$') ? `"${system.slice(1, -1)}/bin/switch-to-configuration"` : shellQuote(`${system}/bin/switch-to-configuration`);
  return [...["env", "-i", "PATH=/run/current-system/sw/bin:/usr/bin:/bin", `NIXOS_INSTALL_BOOTLOADER=${bootloader}`].map(shellQuote), program, shellQuote(action)].join(" ");
}

/**
 * What the host is compared with and goes back to, in order of preference: for boot the boot default; otherwise the
 * running system, else the boot default (a host with no /run/current-system). One definition for the dry run's
 * comparison, the report's rollback target and the script's `prev`.
 */
export function previousSystemSources(action: Action): ReadonlyArray<"currentSystem" | "profileSystem"> {
  return action === "boot" ? ["profileSystem"] : ["currentSystem", "profileSystem"];
}

/** The system the host ran before, as `previousSystemSources` picks it. */
export function previousSystemOf(action: Action, state: Pick<TargetSystem, "currentSystem" | "profileSystem">): string | undefined {
  return previousSystemSources(action).map((source) => state[source]).find((system) => system !== undefined);
}

/** The system a failed activation goes back to; none for dry-activate, which changes nothing. */
export function rollbackTarget(action: Action, before: Pick<TargetSystem, "currentSystem" | "profileSystem">): string | undefined {
  return mayRollBack(action) ? previousSystemOf(action, before) : undefined;
}

export interface ActivationScriptInput {
  readonly id: string;
  readonly toplevel: string;
  readonly action: Action;
  readonly installBootloader?: boolean;
  /** Roll back by itself when switch-to-configuration fails. */
  readonly rollback: boolean;
  /** For switch and test: roll back unless `<id>.decided` is created within this many seconds of activating. */
  readonly confirmTimeoutSeconds?: number;
  /** How long to wait for another deployment's lock before giving up. */
  readonly lockTimeoutSeconds: number;
  /** Who deploys, for the lock holder record (e.g. "laptop pid 4242"). */
  readonly holder: string;
  /** After a kept switch or boot, delete all but the newest this many system generations (nix-env +N). */
  readonly keepGenerations?: number;
  /** Activate even when the host already is what the action would make it. */
  readonly reactivate?: boolean;
  /** systemd is PID 1: failed units are recorded after activating. */
  readonly systemd?: boolean;
  /** switch-to-configuration's exit 4 (units failed, everything else done) counts as success: no rollback. */
  readonly acceptFailedUnits?: boolean;
  /**
   * Point the profile back at this existing generation (`nix-env --switch-generation`, as `nixos-rebuild --rollback`
   * does) instead of making a new one; its system is `toplevel`.
   */
  readonly switchGeneration?: number;
}

/** switch-to-configuration's exit code when the switch was done but units failed (NixOS's, and nixpkgs-lite's). */
export const UNITS_FAILED_EXIT = 4;

/** The exit codes of switch-to-configuration an activation keeps (does not roll back). */
export function keptExitCodes(acceptFailedUnits: boolean | undefined): readonly number[] {
  return acceptFailedUnits ? [0, UNITS_FAILED_EXIT] : [0];
}

/**
 * On a systemd host, right after activating and before any rollback: the failed units (our own activation units
 * aside), and each one's last journal lines, into the state files `failed-units` and `journal`.
 */
function recordFailedUnitsCommand(f: (name: StateFileName) => string): string {
  return [
    `failed=$(${failedUnitsCommand({ servicesOnly: true })} | tr '\\n' ' ' | sed 's/ $//')`,
    `if [ -n "$failed" ]; then echo "$failed" >${f("failed-units")}; for u in $failed; do ${UNIT_JOURNAL_COMMAND}; done >${f("journal")}; fi`,
  ].join("\n");
}

/**
 * The one script every activation runs on the target, as root and detached from the SSH session, so neither a cut
 * connection nor a killed deployer can leave the profile and the running system out of step:
 *
 * 1. takes the host's deployment lock (waiting a bounded time, recording who waits for whom);
 * 2. records the state it starts from, read under the lock, so a rollback goes back to what really ran before;
 * 3. sets the profile and runs switch-to-configuration, writing everything to `<id>.log` (never the session, whose
 *    loss would kill it with SIGPIPE) and the exit status to `<id>.status`;
 * 4. on failure rolls back (unless told not to); for a confirmed activation waits for the deployer to create
 *    `<id>.decided` over a new connection, and otherwise creates it itself and rolls back (deploy-rs's magic
 *    rollback). `mkdir` is atomic: exactly one side decides;
 * 5. once the new generation stays (activated, and confirmed if asked), deletes all but the newest `keepGenerations`
 *    system generations, still under the lock;
 * 6. writes `<id>.done` and releases the lock by exiting.
 */
export function activationScript(input: ActivationScriptInput): string {
  const f = (name: StateFileName) => stateFile(input.id, name);
  const q = shellQuote;
  const profile = setsProfile(input.action);
  // previousSystemSources, as the script's variables (recorded under the lock)
  const variables = { currentSystem: "current", profileSystem: "profile_system" } as const;
  const sources = previousSystemSources(input.action).map((source) => variables[source]);
  const previous = sources.length === 1 ? `"$${sources[0]}"` : `"\${${sources.join(":-$")}}"`;
  // The profile goes back to a generation of the system that runs again (the newest, if several), never to the
  // generation the profile pointed at: after a reboot mid-activation that one may never have run. A system in no
  // generation gets a new one.
  const rollbackSteps = [
    ...(profile ? [`{ if [ -z "$prev" ]; then nix-env -p ${SYSTEM_PROFILE} --switch-generation "$gen"; else ` +
      'rgen=; for l in ' + SYSTEM_PROFILE + '-*-link; do n=${l#' + SYSTEM_PROFILE + '-}; n=${n%-link}; ' +
      '[ "$(readlink -f "$l")" = "$prev" ] && { [ -z "$rgen" ] || [ "$n" -gt "$rgen" ]; } && rgen=$n; done; ' +
      `if [ -n "$rgen" ]; then nix-env -p ${SYSTEM_PROFILE} --switch-generation "$rgen"; else nix-env -p ${SYSTEM_PROFILE} --set "$prev"; fi; fi; }`] : []),
    `{ [ -z "$prev" ] || ${switchCommand('"$prev"', input.action, input)}; }`,
  ];
  const setProfile = input.switchGeneration === undefined
    ? setProfileCommand(input.toplevel)
    // the generation is checked to still be the system the deployer read: it may have changed since
    : `[ "$(readlink -f ${SYSTEM_PROFILE}-${input.switchGeneration}-link)" = ${q(input.toplevel)} ] && ` +
      ["nix-env", "-p", SYSTEM_PROFILE, "--switch-generation", String(input.switchGeneration)].map(shellQuote).join(" ");
  const activate = [...(profile ? [setProfile] : []), switchCommand(input.toplevel, input.action, input)];
  const confirms = input.confirmTimeoutSeconds !== undefined && input.confirmTimeoutSeconds > 0 && mayConfirm(input.action);
  const lines = [
    "set -u",
    // a transient unit's PATH may be systemd's minimal default; NixOS keeps flock, nix-env & co. in the system path
    `export PATH="$PATH:/run/current-system/sw/bin"`,
    `mkdir -p ${ACTIVATION_DIR}`,
    // who runs this activation (pid and start time, so a reused pid is not mistaken for it): written before the log,
    // so whoever sees the log can tell whether the script still runs
    `echo "$$ $(cut -d' ' -f22 /proc/$$/stat)" >${f("pid")}`,
    `exec >${f("log")} 2>&1 </dev/null`,
    // without flock the lock below would look held by someone else: say which tool is missing instead
    `command -v flock >/dev/null 2>&1 || { echo "flock (util-linux) is missing"; echo ${STATUS_WORDS.missingTool}flock >${f("status")}; touch ${f("done")}; exit 0; }`,
    `exec 9>>${LOCK_FILE}`,
    "if ! flock -n 9; then",
    `  { cat ${LOCK_HOLDER_FILE} 2>/dev/null || echo "another deployment"; } | head -n 1 >${f("lock-wait")}`,
    `  echo "waiting up to ${input.lockTimeoutSeconds} s for the deployment lock, held by $(cat ${f("lock-wait")})"`,
    `  if ! flock -w ${input.lockTimeoutSeconds} 9; then echo ${STATUS_WORDS.locked} >${f("status")}; touch ${f("done")}; exit 0; fi`,
    "fi",
    // The lock lives as long as everything an activation started: when the one before died (killed, its unit stopped)
    // while what it started (switch-to-configuration, in its process group) still runs, wait for that too.
    `prev_holder=$(head -c ${STATE_LINE_BYTES} ${LOCK_HOLDER_FILE} 2>/dev/null | head -n 1)`,
    `prev_id=$(printf %s "$prev_holder" | sed -n 's/.*, activation \\([0-9a-f]*\\) since .*/\\1/p')`,
    `prev_pgid=$(printf %s "$prev_holder" | sed -n 's/.* pgid=\\([0-9]*\\)$/\\1/p')`,
    `if [ -n "$prev_id" ] && [ -n "$prev_pgid" ] && [ ! -e ${ACTIVATION_DIR}/$prev_id.done ] && kill -0 "-$prev_pgid" 2>/dev/null; then`,
    `  printf '%s\\n' "$(printf %s "$prev_holder" | cut -c1-200): its activation script is gone, what it started still runs" >${f("lock-wait")}`,
    `  echo "waiting up to ${input.lockTimeoutSeconds} s for what the activation before started to end ($prev_holder)"`,
    `  i=0; while kill -0 "-$prev_pgid" 2>/dev/null; do if [ $i -ge ${input.lockTimeoutSeconds} ]; then echo ${STATUS_WORDS.locked} >${f("status")}; touch ${f("done")}; exit 0; fi; sleep 1; i=$((i+1)); done`,
    "fi",
    // an activation whose script died is over now: the next inspection no longer reports it
    `[ -z "$prev_id" ] || [ -e ${ACTIVATION_DIR}/$prev_id.done ] || touch ${ACTIVATION_DIR}/$prev_id.done`,
    `echo ${q(`${input.holder}, activation ${input.id}`)}" since $(date -u +%Y-%m-%dT%H:%M:%SZ) pgid=$$" >${LOCK_HOLDER_FILE}`,
    // from here on, however the script ends, what it did is recorded for `status` (best effort: never fails it)
    SAFE_DIR_FUNCTION,
    "last() {",
    `  st=$(head -c 64 ${f("status")} 2>/dev/null | head -n 1); rb=$(head -c 64 ${f("rolled-back")} 2>/dev/null | head -n 1)`,
    `  safe_dir ${LAST_ACTIVATION_DIR} 0755 2>/dev/null && printf '%s\\n' "at=$(date -u +%Y-%m-%dT%H:%M:%SZ) id=${input.id} action=${input.action} ` +
      `system=${input.toplevel} status=\${st:-none} rolledBack=\${rb:-no} by="${q(input.holder.slice(0, 200))} ` +
      `>${LAST_ACTIVATION_FILE}.new && mv -f ${LAST_ACTIVATION_FILE}.new ${LAST_ACTIVATION_FILE}`,
    "}",
    "trap last EXIT",
    // under the lock no other activation runs, so week-old state files are of finished ones (a reboot clears all)
    `find ${ACTIVATION_DIR} -mindepth 1 -maxdepth 1 -name '*.*' ! -name 'lock*' -mtime +7 -exec rm -rf {} + 2>/dev/null`,
    "record() {",
    `  gen=$(readlink ${SYSTEM_PROFILE} 2>/dev/null | sed -n 's/^system-\\([0-9]*\\)-link$/\\1/p')`,
    "  current=; [ -e /run/current-system ] && current=$(readlink -f /run/current-system)",
    `  profile_system=; [ -e ${SYSTEM_PROFILE} ] && profile_system=$(readlink -f ${SYSTEM_PROFILE})`,
    `  echo "profile=system-$gen-link current=$current profileSystem=$profile_system" >"$1"`,
    "}",
    `record ${f("started")}`,
    ...upToDateCheck(input, f),
    `prev=${previous}`,
    "rollback() {",
    `  if [ -z "$gen$prev" ]; then echo nothing >${f("rolled-back")}; return; fi`,
    `  echo "rolling back to \${prev:-generation $gen}"`,
    `  { ${rollbackSteps.join(" && ")}; } 9>&-`,
    `  echo $? >${f("rolled-back")}`,
    "}",
    `echo ${q(`${input.action} of ${input.toplevel}`)}`,
    // 9>&-: whatever activation starts (services, background jobs) must not inherit, and so hold, the lock
    `{ ${activate.join(" && ")}; } 9>&-`,
    "rc=$?",
    // what this activation made, recorded under the lock: a deployment waiting for it may change the host right after
    `(record ${f("after")})`,
    ...(input.systemd ? [recordFailedUnitsCommand(f)] : []),
    // kept: switch-to-configuration succeeded, or (when accepted) only units failed
    `case $rc in ${keptExitCodes(input.acceptFailedUnits).join("|")}) kept=0 ;; *) kept=$rc ;; esac`,
    // the window opens before the status says 0, so a deployer that reads the status finds the window to confirm in
    ...(confirms ? [
      // on the host's clock: the confirmation command refuses to confirm after it (see confirmCommand)
      `[ $kept != 0 ] || { deadline=$(( $(date +%s) + ${input.confirmTimeoutSeconds} )); echo "$deadline ${input.toplevel}" >${f("deadline")}; }`,
    ] : []),
    `echo $rc >${f("status")}`,
  ];
  if (mayRollBack(input.action)) {
    lines.push(`if [ $kept != 0 ]; then ${input.rollback ? "rollback" : `echo "left as it is (no rollback)"`}; touch ${f("done")}; exit 0; fi`);
  }
  const timeout = input.confirmTimeoutSeconds;
  if (confirms) {
    lines.push(
      // the deployer confirms (decided), or rejects (a health check failed), or the window closes
      `while [ "$(date +%s)" -lt "$deadline" ] && [ ! -d ${f("decided")} ] && [ ! -e ${f("reject")} ]; do sleep 1; done`,
      `if mkdir ${f("decided")} 2>/dev/null; then ` +
        `if [ -e ${f("reject")} ]; then echo "a health check failed: rolling back"; else echo "no confirmation within ${timeout} s: rolling back"; fi; rollback; fi`,
    );
  }
  if (input.keepGenerations !== undefined && mayPruneGenerations(input.action)) {
    // a rolled-back activation keeps everything: the generations it would prune are what the host fell back on
    lines.push(`[ -e ${f("rolled-back")} ] || { nix-env -p ${SYSTEM_PROFILE} --delete-generations +${input.keepGenerations}; } 9>&-`);
  }
  lines.push(`touch ${f("done")}`);
  return lines.join("\n");
}

/**
 * Under the lock: a deployment that waited for another one may find the host already is what it would make it (two
 * pushes of one system at once). It then changes nothing, and says so in its status.
 */
function upToDateCheck(input: ActivationScriptInput, f: (name: StateFileName) => string): string[] {
  const requires = upToDateRequires(input.action);
  if (input.reactivate || requires === undefined) return [];
  const variable = { currentSystem: "$current", profileSystem: "$profile_system" } as const;
  const test = requires.map((what) => `[ "${variable[what]}" = ${shellQuote(input.toplevel)} ]`).join(" && ");
  return [`if ${test}; then echo "already up to date: nothing to do"; echo ${STATUS_WORDS.upToDate} >${f("status")}; touch ${f("done")}; exit 0; fi`];
}

/**
 * Starts the activation script as root, detached: in a transient systemd unit where systemd runs (so stopping the
 * SSH session's scope cannot take it down, as nixos-rebuild-ng does for switch-to-configuration), otherwise in its
 * own session (setsid). Returns once it runs; a sudo that wants a password fails here, visibly.
 */
export function startActivationCommand(id: string, script: string, context: ActivationContext): string {
  const runner = context.systemd
    ? ["systemd-run", `--unit=cdktf-nixos-activation-${id}`, "--description=cdktf-nixos activation", "--collect",
      "--no-ask-password", "--quiet", "--service-type=exec", "-E", "LOCALE_ARCHIVE", "--"]
    : ["setsid", "-f"];
  // Before anything starts: the state directory is root's own, or nothing is written into it (see safe-dir.ts).
  const guarded = [
    SAFE_DIR_FUNCTION,
    `safe_dir ${ACTIVATION_DIR} 0755 || exit ${UNSAFE_STATE_DIR_EXIT}`,
    // systemd expands ${NAME} (and $NAME as a word) in a unit's command line before running it, even in a transient
    // unit's argv: every $ of the script is doubled there ($$ is systemd's literal $), or ${l#prefix} and $$ would
    // reach the shell empty
    `exec ${[...runner, "sh", "-c", context.systemd ? script.replaceAll("$", "$$$$") : script].map(shellQuote).join(" ")}`,
  ].join("\n");
  return `${privileged(context, ["sh", "-c", guarded])} </dev/null >/dev/null`;
}

export interface ActivationInput {
  /** The target as inspected before the deployment touched it. */
  readonly before: TargetSystem;
  readonly toplevel: string;
  readonly action: Action;
  /** The login user; any other than root activates through `sudo -n`. */
  readonly user: string;
  /** NIXOS_INSTALL_BOOTLOADER=1 for switch-to-configuration. */
  readonly installBootloader?: boolean;
  /** For switch and test: the host rolls itself back unless confirmed within this many seconds. */
  readonly confirmTimeoutSeconds?: number;
  /** @default true */
  readonly rollback?: boolean;
  readonly lockTimeoutSeconds: number;
  /** Who deploys, as the lock holder record names it. */
  readonly holder: string;
  /** Names this activation's state files on the target; random per deployment, passed in to keep the plan pure. */
  readonly id: string;
  /** Keep only the newest this many system generations once the new one stays. */
  readonly keepGenerations?: number;
  /** Activate even when the host already is what the action would make it. */
  readonly reactivate?: boolean;
  /** Keep an activation whose only failure is failed units (switch-to-configuration's exit 4). */
  readonly acceptFailedUnits?: boolean;
  /**
   * The longest the health checks may take (healthCheckBudgetSeconds); above 0, a switch or test is confirmed in a
   * window that holds them and then the confirmation timeout (CHECKED_CONFIRM_SECONDS when that is 0).
   */
  readonly healthCheckSeconds?: number;
  /** Go back to this existing generation of the profile (rollback) instead of making a new one. */
  readonly switchGeneration?: number;
}

/** Everything one activation does on the target, decided before anything runs. */
export interface ActivationPlan {
  readonly id: string;
  readonly action: Action;
  readonly toplevel: string;
  /** The system a failed activation goes back to as inspected (the script re-reads it under the lock). */
  readonly rollbackTo?: string;
  readonly rollback: boolean;
  /** switch-to-configuration's exit codes that keep the new system (0, and 4 when failed units are accepted). */
  readonly keptExitCodes: readonly number[];
  readonly lockTimeoutSeconds: number;
  /** Starts the detached activation script; returns at once. */
  readonly start: string;
  /** Prints the activation's state files (see `parseActivationState`). */
  readonly readState: string;
  /** Prints what the activation wrote. */
  readonly readLog: string;
  /** Prints the failed units' journal lines (see `parseJournal`). */
  readonly readJournal: string;
  /**
   * Set for a confirmed (magic rollback) activation: `command` runs over a new connection, exit 0 = confirmed in time;
   * `reject` makes the host roll back at once (a health check failed); `checkSeconds` of the window are for the checks.
   */
  readonly confirm?: { readonly timeoutSeconds: number; readonly command: string; readonly reject: string; readonly checkSeconds: number };
  /** Where the activation's log is on the target, for messages. */
  readonly logFile: string;
}

/** Exit codes of the confirmation command when it does not confirm. */
export const CONFIRM_TOO_LATE = 4;
export const CONFIRM_SCRIPT_GONE = 5;

/**
 * Confirms an activation by creating `<id>.decided` — only within the window the script recorded (on the host's own
 * clock) and while the script runs, so a confirmation never lands after the window, or for an activation nothing
 * watches any more. `mkdir` is atomic: when the script decided first (to roll back), it fails.
 */
export function confirmCommand(id: string, context: Pick<ActivationContext, "sudo">): string {
  const f = (name: StateFileName) => stateFile(id, name);
  const state = `${ACTIVATION_DIR}/${id}`;
  const script = [
    `d=$(cut -d' ' -f1 ${f("deadline")} 2>/dev/null); [ -n "$d" ] && [ "$(date +%s)" -lt "$d" ] || exit ${CONFIRM_TOO_LATE}`,
    `${scriptAliveTest(state)} || exit ${CONFIRM_SCRIPT_GONE}`,
    `mkdir ${f("decided")}`,
  ].join("; ");
  return privileged(context, ["sh", "-c", script]);
}

/**
 * Rejects an activation after a failed health check: `<id>.reject` ends the script's wait for the confirmation, and
 * it rolls back at once (unless it already decided: then the confirmation window had closed and it rolls back anyway).
 */
export function rejectCommand(id: string, context: Pick<ActivationContext, "sudo">): string {
  return privileged(context, ["touch", stateFile(id, "reject")]);
}

/** The confirmation window of an activation, or undefined for none: the confirmation timeout, plus the checks' time. */
export function confirmWindowSeconds(action: Action, confirmTimeoutSeconds: number | undefined, healthCheckSeconds: number | undefined): number | undefined {
  if (!mayConfirm(action)) return undefined;
  const checks = healthCheckSeconds ?? 0;
  const confirm = confirmTimeoutSeconds ?? 0;
  if (checks <= 0) return confirm > 0 ? confirm : undefined;
  return checks + (confirm > 0 ? confirm : CHECKED_CONFIRM_SECONDS);
}

/** The pure activation planner: the target's state and the request in, the exact commands out. */
export function planActivation(input: ActivationInput): ActivationPlan {
  const context: ActivationContext = {
    sudo: input.user !== "root",
    systemd: input.before.systemd,
    installBootloader: input.installBootloader,
  };
  const timeout = confirmWindowSeconds(input.action, input.confirmTimeoutSeconds, input.healthCheckSeconds);
  const confirmed = timeout !== undefined;
  const rollback = input.rollback ?? true;
  const script = activationScript({
    id: input.id,
    toplevel: input.toplevel,
    action: input.action,
    installBootloader: input.installBootloader,
    rollback,
    confirmTimeoutSeconds: confirmed ? timeout : undefined,
    lockTimeoutSeconds: input.lockTimeoutSeconds,
    holder: input.holder,
    keepGenerations: input.keepGenerations,
    reactivate: input.reactivate,
    systemd: context.systemd,
    acceptFailedUnits: input.acceptFailedUnits,
    switchGeneration: input.switchGeneration,
  });
  const f = (name: StateFileName) => stateFile(input.id, name);
  return {
    id: input.id,
    action: input.action,
    toplevel: input.toplevel,
    rollbackTo: rollbackTarget(input.action, input.before),
    rollback: rollback && mayRollBack(input.action),
    keptExitCodes: keptExitCodes(input.acceptFailedUnits),
    lockTimeoutSeconds: input.lockTimeoutSeconds,
    start: startActivationCommand(input.id, script, context),
    readState: readStateCommand(input.id),
    readLog: `tail -c ${LOG_TAIL_BYTES} ${f("log")}`,
    readJournal: `tail -c ${JOURNAL_TAIL_BYTES} ${f("journal")}`,
    logFile: `${f("log")}`,
    ...(confirmed ? {
      confirm: {
        timeoutSeconds: timeout, command: confirmCommand(input.id, context), reject: rejectCommand(input.id, context),
        checkSeconds: input.healthCheckSeconds ?? 0,
      },
    } : {}),
  };
}
