import { parse as parseShellWords } from "shell-quote";
import { UserInputError } from "../errors";

/** Where an HTTP check's request starts. */
export enum HealthCheckFrom {
  /** Through the deployment's SSH connection (a direct-tcpip channel, as `ssh -L` makes): `localhost` is the target. */
  TARGET = "target",
  /** From the machine that deploys (it must reach the URL itself). */
  DEPLOYER = "deployer",
}

/** An HTTP GET and what its answer must be. */
export interface HttpHealthCheck {
  /** `http://` or `https://` URL. */
  readonly url: string;
  /** @default 200 */
  readonly expectStatus?: number;
  /** Text the body must contain (its first 64 KiB are read). @default - any body */
  readonly bodyContains?: string;
  /** @default HealthCheckFrom.TARGET */
  readonly from?: HealthCheckFrom;
}

/**
 * A check a new system must pass after activation and before it is confirmed: a command run on the target (argv, no
 * shell, as the deploy user) or an HTTP GET. Exactly one of `command` and `http`.
 */
export interface HealthCheck {
  /** How reports name it. @default - the command, or "GET <url>" */
  readonly name?: string;
  /** Run on the target as the login user; exit 0 passes. */
  readonly command?: readonly string[];
  readonly http?: HttpHealthCheck;
  /** One attempt's limit. @default 10 */
  readonly timeoutSeconds?: number;
  /** Attempts after the first failed one. @default 2 */
  readonly retries?: number;
  /** Seconds between attempts. @default 2 */
  readonly intervalSeconds?: number;
}

/** A check with every default filled in: what the manifest holds and the engine runs. */
export interface ResolvedHealthCheck {
  readonly name: string;
  readonly command?: readonly string[];
  readonly http?: Required<Omit<HttpHealthCheck, "bodyContains">> & Pick<HttpHealthCheck, "bodyContains">;
  readonly timeoutSeconds: number;
  readonly retries: number;
  readonly intervalSeconds: number;
}

export const HEALTH_CHECK_DEFAULTS = { timeoutSeconds: 10, retries: 2, intervalSeconds: 2, expectStatus: 200 } as const;
/** The systemd check: how long the host may still be starting units before it counts as not settled. */
export const SYSTEMD_CHECK_TIMEOUT_SECONDS = 30;
/** Without --confirm-timeout a checked activation still needs a window to confirm in once its checks passed. */
export const CHECKED_CONFIRM_SECONDS = 30;

export class HealthCheckSpecError extends UserInputError {}

const FIELDS = ["name", "command", "http", "timeoutSeconds", "retries", "intervalSeconds"];
const HTTP_FIELDS = ["url", "expectStatus", "bodyContains", "from"];
const MAX_WORDS = 256;
const MAX_TEXT = 4096;

/** Checks a health check as a user wrote it (construct prop, manifest, `--health-check`) and fills in the defaults. */
export function resolveHealthCheck(check: unknown, where: string): ResolvedHealthCheck {
  const bad = (what: string) => new HealthCheckSpecError(`${where}: ${what}`);
  if (typeof check !== "object" || check === null || Array.isArray(check)) throw bad("a health check must be an object such as { command: [\"systemctl\", \"is-active\", \"nginx\"] }");
  const c = check as Record<string, unknown>;
  const unknown = Object.keys(c).filter((key) => !FIELDS.includes(key));
  if (unknown.length > 0) throw bad(`unknown field ${unknown.map((k) => `'${k}'`).join(", ")} (a health check has ${FIELDS.join(", ")})`);
  if ((c.command === undefined) === (c.http === undefined)) throw bad("a health check has exactly one of 'command' and 'http'");
  const number = (field: string, value: unknown, fallback: number, ok: (n: number) => boolean, must: string): number => {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isFinite(value) || !ok(value)) throw bad(`'${field}' must be ${must}, got ${JSON.stringify(value)}`);
    return value;
  };
  const text = (field: string, value: unknown): string => {
    if (typeof value !== "string" || value.length === 0 || value.length > MAX_TEXT || value.includes("\0")) {
      throw bad(`'${field}' must be a non-empty string of at most ${MAX_TEXT} characters, got ${JSON.stringify(value)?.slice(0, 80)}`);
    }
    return value;
  };
  let command: string[] | undefined;
  let http: ResolvedHealthCheck["http"];
  if (c.command !== undefined) {
    if (!Array.isArray(c.command) || c.command.length === 0 || c.command.length > MAX_WORDS) {
      throw bad(`'command' must be a non-empty list of words (argv, no shell), e.g. ["systemctl", "is-active", "nginx"]; got ${JSON.stringify(c.command)?.slice(0, 80)}`);
    }
    command = c.command.map((word, i) => text(`command[${i}]`, word));
  } else {
    if (typeof c.http !== "object" || c.http === null || Array.isArray(c.http)) throw bad("'http' must be an object such as { url: \"http://localhost/health\" }");
    const h = c.http as Record<string, unknown>;
    const unknownHttp = Object.keys(h).filter((key) => !HTTP_FIELDS.includes(key));
    if (unknownHttp.length > 0) throw bad(`unknown field ${unknownHttp.map((k) => `'http.${k}'`).join(", ")} (an HTTP check has ${HTTP_FIELDS.join(", ")})`);
    const url = text("http.url", h.url);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw bad(`'http.url' ${JSON.stringify(url)} is not a URL, e.g. http://localhost/health`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw bad(`'http.url' ${JSON.stringify(url)} is not an http:// or https:// URL`);
    if (parsed.username !== "" || parsed.password !== "") throw bad(`'http.url' must not hold credentials (they would end up in the manifest and in reports)`);
    const from = h.from ?? HealthCheckFrom.TARGET;
    if (from !== HealthCheckFrom.TARGET && from !== HealthCheckFrom.DEPLOYER) throw bad(`'http.from' must be "target" or "deployer", got ${JSON.stringify(from)}`);
    http = {
      url,
      expectStatus: number("http.expectStatus", h.expectStatus, HEALTH_CHECK_DEFAULTS.expectStatus, (n) => Number.isInteger(n) && n >= 100 && n <= 599, "an HTTP status from 100 to 599"),
      ...(h.bodyContains !== undefined ? { bodyContains: text("http.bodyContains", h.bodyContains) } : {}),
      from: from as HealthCheckFrom,
    };
  }
  const name = c.name !== undefined ? text("name", c.name) : command !== undefined ? command.join(" ") : `GET ${http!.url}`;
  return {
    name,
    ...(command !== undefined ? { command } : { http }),
    timeoutSeconds: number("timeoutSeconds", c.timeoutSeconds, HEALTH_CHECK_DEFAULTS.timeoutSeconds, (n) => n > 0 && n <= 3600, "seconds above 0, at most 3600"),
    retries: number("retries", c.retries, HEALTH_CHECK_DEFAULTS.retries, (n) => Number.isInteger(n) && n >= 0 && n <= 100, "a whole number from 0 to 100"),
    intervalSeconds: number("intervalSeconds", c.intervalSeconds, HEALTH_CHECK_DEFAULTS.intervalSeconds, (n) => n >= 0 && n <= 3600, "seconds from 0 to 3600"),
  };
}

/**
 * `--health-check TEXT`: a command line (split like a shell splits words, with quotes; no pipes, no redirections),
 * or a whole check as JSON (`{"http":{"url":"http://localhost/health"}}`, as the manifest writes it).
 */
export function parseHealthCheckArgument(text: string): ResolvedHealthCheck {
  const where = `--health-check '${text}'`;
  if (text.trimStart().startsWith("{")) {
    let spec: unknown;
    try {
      spec = JSON.parse(text);
    } catch {
      throw new HealthCheckSpecError(`${where} is not JSON (a check given as an object, e.g. '{"http":{"url":"http://localhost/health"}}')`);
    }
    return resolveHealthCheck(spec, where);
  }
  const words = parseShellWords(text, (name) => `$${name}`);
  if (words.some((word) => typeof word !== "string")) {
    throw new HealthCheckSpecError(`${where}: a check is one command (argv, no shell): for pipes or redirections run a shell, e.g. --health-check "sh -c 'curl -s localhost | grep ok'"`);
  }
  if (words.length === 0) throw new HealthCheckSpecError(`${where}: the command is empty, e.g. --health-check 'systemctl is-active nginx'`);
  return resolveHealthCheck({ command: words }, where);
}

/** The longest a check can take: every attempt timing out, with the intervals between them. */
export function healthCheckBudgetSeconds(checks: readonly ResolvedHealthCheck[], systemd: boolean): number {
  const user = checks.reduce((sum, c) => sum + (c.retries + 1) * c.timeoutSeconds + c.retries * c.intervalSeconds, 0);
  return user + (systemd ? SYSTEMD_CHECK_TIMEOUT_SECONDS : 0);
}
