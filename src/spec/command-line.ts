import { COMPRESS_MODES } from "../nix/serve/copy-policy";
import { parseCacheUrl, parsePublicKeyText } from "./cache-url";
import { shellQuote } from "../shell";
import { ACTIONS } from "./goal";
import { parseHealthCheckArgument } from "./health-check";
import { KeySpecError, type KeySpec } from "./key-spec";
import { DEPLOY_ENV, type DeploymentSettings } from "./manifest";
import { parseChoice, parseKeepGenerations, parseMaxChannels, parsePort, secondsFlag } from "./flags";
import { parseJumpHost } from "./target";
import { type ResolvedDeploymentSettings, type SettingOverrides } from "./settings";

type Settings = ResolvedDeploymentSettings;

/** How one setting is written on the `deploy` command line. */
export type SettingFlag<V> =
  /** `--flag VALUE`; `show` gives the word, or undefined to leave the flag out. */
  | { readonly kind: "value"; readonly flag: string; readonly parse: (text: string) => V; readonly show: (value: V) => string | undefined }
  /** `--flag` alone sets true. */
  | { readonly kind: "switch"; readonly flag: string }
  /** `--no-flag` sets false. */
  | { readonly kind: "negated"; readonly flag: string }
  /** `--flag VALUE`, repeated for each item. */
  | { readonly kind: "list"; readonly flag: string; readonly parse: (texts: readonly string[]) => V; readonly show: (value: V) => string[] }
  /** Part of `--target-host USER@HOST` (in CDKTF_NIXOS_TARGET_HOST under Terraform), not a flag of its own. */
  | { readonly kind: "target-host" };

/**
 * Every deployment setting's `deploy` flag: the one place that writes a setting on a command line (deployArguments,
 * for Terraform's local-exec) and reads it back (settingsGiven, for `deploy` and `push`). The mapped type makes a new
 * setting a compile error here until it has a flag.
 */
export const SETTING_FLAGS: { readonly [K in keyof Settings]: SettingFlag<Settings[K]> } = {
  user: { kind: "target-host" },
  port: { kind: "value", flag: "--target-port", parse: (text) => parsePort("--target-port", text), show: String },
  action: { kind: "value", flag: "--action", parse: (text) => parseChoice("--action", text, ACTIONS), show: String },
  sshPrivateKeyFile: { kind: "value", flag: "--ssh-key", parse: (text) => text, show: (value) => value },
  knownHostsFile: { kind: "value", flag: "--known-hosts", parse: (text) => text, show: String },
  acceptNewHostKey: { kind: "switch", flag: "--accept-new-host-key" },
  jumpHost: {
    kind: "value", flag: "--jump-host", show: (value) => value,
    // checked here, kept as written: the manifest and the command line hold the same text
    parse: (text) => (parseJumpHost(text), text),
  },
  sshCompression: { kind: "switch", flag: "--ssh-compression" },
  useSubstitutes: { kind: "switch", flag: "--use-substitutes" },
  // checked here, kept as written (as the jump host): the manifest and the command line hold the same text
  cache: { kind: "value", flag: "--cache", parse: (text) => (parseCacheUrl(text), text), show: (value) => value },
  cacheSubstituter: { kind: "value", flag: "--cache-substituter", parse: (text) => (parseCacheUrl(text, "--cache-substituter"), text), show: (value) => value },
  cacheSigningKeyFile: { kind: "value", flag: "--cache-signing-key", parse: (text) => text, show: (value) => value },
  cachePublicKey: { kind: "value", flag: "--cache-public-key", parse: (text) => (parsePublicKeyText(text), text), show: (value) => value },
  cachePushCommand: { kind: "value", flag: "--cache-push-command", parse: (text) => text, show: (value) => value },
  buildHost: { kind: "value", flag: "--build-host", parse: (text) => (parseJumpHost(text, "--build-host"), text), show: (value) => value },
  compress: { kind: "value", flag: "--compress", parse: (text) => parseChoice("--compress", text, COMPRESS_MODES), show: String },
  maxChannels: { kind: "value", flag: "--max-channels", parse: parseMaxChannels, show: String },
  buildOnTarget: { kind: "switch", flag: "--build-on-target" },
  installBootloader: { kind: "switch", flag: "--install-bootloader" },
  rollback: { kind: "negated", flag: "--no-rollback" },
  allowNonNixos: { kind: "switch", flag: "--allow-non-nixos" },
  reactivate: { kind: "switch", flag: "--reactivate" },
  acceptFailedUnits: { kind: "switch", flag: "--accept-failed-units" },
  // a check given as a command line is read as argv; the manifest's and local-exec's are whole checks, as JSON
  healthChecks: { kind: "list", flag: "--health-check", parse: (texts) => texts.map(parseHealthCheckArgument), show: (checks) => checks.map((c) => JSON.stringify(c)) },
  systemdHealthCheck: { kind: "negated", flag: "--no-systemd-health-check" },
  connectTimeoutSeconds: { kind: "value", flag: "--connect-timeout", parse: (text) => secondsFlag("--connect-timeout", text), show: String },
  consoleTimeoutSeconds: { kind: "value", flag: "--console-timeout", parse: (text) => secondsFlag("--console-timeout", text), show: String },
  confirmTimeoutSeconds: {
    kind: "value", flag: "--confirm-timeout", show: String,
    parse: (text) => secondsFlag("--confirm-timeout", text, { whole: true }),
  },
  activationTimeoutSeconds: {
    kind: "value", flag: "--activation-timeout", show: String,
    parse: (text) => secondsFlag("--activation-timeout", text, { above0: true }),
  },
  lockTimeoutSeconds: { kind: "value", flag: "--lock-timeout", parse: (text) => secondsFlag("--lock-timeout", text, { whole: true }), show: String },
  replyTimeoutSeconds: { kind: "value", flag: "--reply-timeout", parse: (text) => secondsFlag("--reply-timeout", text, { above0: true }), show: String },
  keepGenerations: {
    kind: "value", flag: "--keep-generations", parse: parseKeepGenerations,
    show: (value) => (value === undefined ? undefined : String(value)),
  },
  ec2Endpoint: { kind: "value", flag: "--endpoint", parse: (text) => text, show: (value) => value },
  // where each key's content comes from (a path or a command), never the content
  keys: { kind: "list", flag: "--key-spec", parse: (texts) => texts.map(parseKeySpecArgument), show: (keys) => keys.map((key) => JSON.stringify(key)) },
  sensitiveArgs: { kind: "list", flag: "--sensitive-arg", parse: (texts) => [...texts], show: (names) => [...names] },
};

/** commander's name for a flag's value: `--no-rollback` → rollback, `--target-port` → targetPort. */
export function flagAttribute(flag: string): string {
  return flag.replace(/^--(no-)?/, "").replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** The words of every setting on a `deploy` command line: a value equal to the command line's default may be left out. */
export function settingArguments(settings: Settings): string[] {
  return (Object.keys(SETTING_FLAGS) as Array<keyof Settings>).flatMap((name) => {
    const flag = SETTING_FLAGS[name] as SettingFlag<unknown>;
    const value = settings[name];
    switch (flag.kind) {
      case "target-host":
        return [];
      case "switch":
        return value === true ? [flag.flag] : [];
      case "negated":
        return value === false ? [flag.flag] : [];
      case "value": {
        const word = flag.show(value);
        return word === undefined ? [] : [flag.flag, word];
      }
      case "list":
        return flag.show(value).flatMap((word) => [flag.flag, word]);
    }
  });
}

/**
 * The settings a command line gave: each flag `given` reports as set on it (or in its environment variable), parsed
 * and checked. A flag not given is absent, so it cannot override a deployment's own setting with a default.
 */
export function settingsGiven(
  values: Readonly<Record<string, unknown>>,
  given: (attribute: string) => boolean,
  only: ReadonlyArray<keyof Settings> = Object.keys(SETTING_FLAGS) as Array<keyof Settings>,
): SettingOverrides {
  const out: Record<string, unknown> = {};
  for (const name of only) {
    const flag = SETTING_FLAGS[name] as SettingFlag<unknown>;
    if (flag.kind === "target-host") continue;
    const attribute = flagAttribute(flag.flag);
    if (!given(attribute)) continue;
    const raw = values[attribute];
    switch (flag.kind) {
      case "switch":
        out[name] = raw === true;
        break;
      case "negated":
        out[name] = raw !== false;
        break;
      case "value":
        out[name] = flag.parse(String(raw));
        break;
      case "list":
        out[name] = flag.parse((raw as string[] | undefined) ?? []);
        break;
    }
  }
  return out as SettingOverrides;
}

/** `--key-spec JSON`: a key with every setting, as NixosDeployment writes it. */
export function parseKeySpecArgument(text: string): KeySpec {
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch {
    throw new KeySpecError(`--key-spec '${text}' is not JSON, e.g. '{"name":"db","file":"./db.pw"}'`);
  }
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) throw new KeySpecError(`--key-spec '${text}' is not a JSON object`);
  return spec as KeySpec;
}

/** A word of a command line: literal text, or the value of an environment variable at run time. */
export type CommandWord = string | { readonly env: string };

/** A POSIX shell command line; environment words become double-quoted expansions. */
export function renderCommand(words: readonly CommandWord[]): string {
  return words.map((word) => (typeof word === "string" ? shellQuote(word) : `"$${word.env}"`)).join(" ");
}

/**
 * The `cdktf-nixos deploy` arguments of a deployment: every setting, then where the system comes from. Apply-time
 * values (host, module arguments, instance id, region) are not on the command line: Terraform passes them in the
 * environment (DEPLOY_ENV).
 */
export function deployArguments(spec: DeploymentSettings): CommandWord[] {
  const source = spec.source;
  return [
    "deploy",
    ...settingArguments(spec),
    "--json",
    ...(source.configuration !== undefined
      ? ["--config", source.configuration, ...Object.entries(source.nixPath ?? {}).flatMap(([k, v]) => ["-I", `${k}=${v}`])]
      : []),
    ...(source.flake !== undefined ? ["--flake", source.flake] : []),
    ...(spec.instanceId !== undefined ? ["--host-key-from-ec2-console", { env: DEPLOY_ENV.instanceId }] : []),
    ...(spec.instanceId !== undefined && spec.region !== undefined ? ["--region", { env: DEPLOY_ENV.region }] : []),
  ];
}
