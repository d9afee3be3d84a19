import { homedir } from "node:os";
import { join } from "node:path";
import { MAX_DATA_CHANNELS, type CompressMode } from "../nix/serve/copy-policy";
import type { Action } from "./goal";
import type { ResolvedHealthCheck } from "./health-check";
import type { KeySpec } from "./key-spec";

/**
 * Every setting of one host's deployment, each with its value: what the engine needs besides where the system comes
 * from and the values Terraform applied. The one model of "how a host is deployed": NixosDeployment resolves its
 * props into it and the manifest holds it; the `deploy` command line carries it (SETTING_FLAGS, one flag per field);
 * `deployRequestOf` maps it, with the applied values and command-line overrides, to the request both `cdktf deploy`
 * and `push` run. A field added here is a compile error in each of those places until it is handled.
 */
export interface ResolvedDeploymentSettings {
  readonly user: string;
  readonly port: number;
  readonly action: Action;
  /** Private key to log in with; undefined means ssh-agent. */
  readonly sshPrivateKeyFile: string | undefined;
  readonly knownHostsFile: string;
  /** Trust the key of a host the known_hosts file does not list yet (OpenSSH's accept-new). */
  readonly acceptNewHostKey: boolean;
  /** A bastion, `[user@]host[:port]` (ssh -J); undefined connects directly. */
  readonly jumpHost: string | undefined;
  /** zlib on the whole SSH connection (ssh -C). */
  readonly sshCompression: boolean;
  readonly useSubstitutes: boolean;
  /**
   * A binary cache the closure goes through (`s3://BUCKET?region=…`, `file:///DIR`; another kind with
   * cachePushCommand): uploaded to once, every host fetches from it; undefined copies each host's closure directly.
   */
  readonly cache: string | undefined;
  /** Where hosts fetch the cache from, when not at `cache` itself (e.g. its https address). */
  readonly cacheSubstituter: string | undefined;
  /** The secret key (`nix-store --generate-binary-cache-key`'s) uploads are signed with; read at deploy time. */
  readonly cacheSigningKeyFile: string | undefined;
  /** The key hosts trust for the cache; undefined derives it from the signing key. */
  readonly cachePublicKey: string | undefined;
  /** A command that uploads store paths (given as its arguments) to the cache instead of this tool. */
  readonly cachePushCommand: string | undefined;
  /** `[user@]host[:port]` that builds the system instead of this machine (nixos-rebuild's --build-host). */
  readonly buildHost: string | undefined;
  /** zstd on the copy's data stream. */
  readonly compress: CompressMode;
  /** Data channels a far host's copy may use at most. */
  readonly maxChannels: number;
  readonly buildOnTarget: boolean;
  readonly installBootloader: boolean;
  /** Put the host back on its previous generation when activation fails. */
  readonly rollback: boolean;
  readonly allowNonNixos: boolean;
  /** Activate even a host that already is what the action would make it. */
  readonly reactivate: boolean;
  /**
   * Keep a new system whose only failure is failed systemd units (switch-to-configuration's exit 4) instead of
   * rolling it back; the units are reported either way.
   */
  readonly acceptFailedUnits: boolean;
  /**
   * Checks a new system must pass after switch or test, before it is confirmed (otherwise the host rolls itself back).
   * With checks, the activation is confirmed even without a confirmation timeout.
   */
  readonly healthChecks: readonly ResolvedHealthCheck[];
  /**
   * The systemd check, run with the others whenever an activation is confirmed: `systemctl is-system-running` is not
   * degraded and no unit failed. Skipped (and said so) on a host without systemd.
   */
  readonly systemdHealthCheck: boolean;
  /** How long an unreachable host is retried (it may be booting). */
  readonly connectTimeoutSeconds: number;
  /** How long an instance's console may take to show its host key fingerprints. */
  readonly consoleTimeoutSeconds: number;
  /** Magic rollback for switch and test; 0 is off. */
  readonly confirmTimeoutSeconds: number;
  readonly activationTimeoutSeconds: number;
  readonly lockTimeoutSeconds: number;
  readonly replyTimeoutSeconds: number;
  /** Keep only the newest this many system generations after a switch or boot; undefined keeps all. */
  readonly keepGenerations: number | undefined;
  /** EC2 endpoint for the console host key check; undefined is AWS's (or AWS_ENDPOINT_URL_EC2). */
  readonly ec2Endpoint: string | undefined;
  /** Files put on the host outside the store: where their content comes from, never the content. */
  readonly keys: readonly KeySpec[];
  /** Module arguments whose values are taken out of every message. */
  readonly sensitiveArgs: readonly string[];
}

/** A setting given on a command line, which replaces the deployment's own. */
export type SettingOverrides = Partial<ResolvedDeploymentSettings>;

/** The defaults of `cdktf-nixos deploy` (and of the library's DeployRequest): nixos-rebuild's, where it has one. */
export const DEFAULT_SETTINGS: ResolvedDeploymentSettings = {
  user: "root",
  port: 22,
  action: "switch",
  sshPrivateKeyFile: undefined,
  knownHostsFile: join(homedir(), ".ssh", "known_hosts"),
  acceptNewHostKey: false,
  jumpHost: undefined,
  sshCompression: false,
  useSubstitutes: false,
  cache: undefined,
  cacheSubstituter: undefined,
  cacheSigningKeyFile: undefined,
  cachePublicKey: undefined,
  cachePushCommand: undefined,
  buildHost: undefined,
  compress: "auto",
  maxChannels: MAX_DATA_CHANNELS,
  buildOnTarget: false,
  installBootloader: false,
  rollback: true,
  allowNonNixos: false,
  reactivate: false,
  acceptFailedUnits: false,
  healthChecks: [],
  systemdHealthCheck: true,
  connectTimeoutSeconds: 10,
  consoleTimeoutSeconds: 600,
  confirmTimeoutSeconds: 0,
  activationTimeoutSeconds: 600,
  lockTimeoutSeconds: 300,
  replyTimeoutSeconds: 60,
  keepGenerations: undefined,
  ec2Endpoint: undefined,
  keys: [],
  sensitiveArgs: [],
};

/**
 * Where NixosDeployment differs from the command line, and why: Terraform deploys a host right after creating its
 * instance, which may still be booting (retry 300 s); an unattended apply must not lock a fleet out (magic rollback
 * after 30 s); host keys live with the project, not in the user's ~/.ssh.
 */
export const CONSTRUCT_DEFAULTS = {
  connectTimeoutSeconds: 300,
  confirmTimeoutSeconds: 30,
  /** Relative to the directory `cdktf synth` runs in. */
  knownHostsFile: join(".cdktf-nixos", "known_hosts"),
} as const satisfies SettingOverrides;

/** The settings of one binary cache: a cache given on a command line comes with its own, or none of the deployment's. */
const CACHE_SETTINGS = ["cacheSubstituter", "cacheSigningKeyFile", "cachePublicKey", "cachePushCommand"] as const;

/**
 * `base` with every override that was given (an undefined override is not given). A given `cache` replaces the
 * deployment's cache with all its settings: the substituter, keys and push command of another cache never apply.
 */
export function withOverrides(base: ResolvedDeploymentSettings, overrides: SettingOverrides): ResolvedDeploymentSettings {
  const given = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
  const cache = overrides.cache !== undefined ? Object.fromEntries(CACHE_SETTINGS.map((name) => [name, overrides[name]])) : {};
  return { ...base, ...cache, ...given };
}
