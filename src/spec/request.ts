import type { CompressMode } from "../nix/serve/copy-policy";
import type { Action } from "./goal";
import type { ResolvedHealthCheck } from "./health-check";
import type { KeySpec } from "./key-spec";
import { withOverrides, type ResolvedDeploymentSettings, type SettingOverrides } from "./settings";
import { parseJumpHost, type JumpHost, type TargetSpec } from "./target";
import { cacheSpecOf, type CacheSpec } from "./cache";
import { UserInputError } from "../errors";

/** What Terraform applied for one deployment (or the command line gave): known only at deploy time. */
export interface AppliedValues {
  readonly host: string;
  /** The EC2 instance whose console vouches for the host key. */
  readonly instanceId?: string;
  /** Its region; undefined is the environment's. */
  readonly region?: string;
}

/** How the engine deploys one host: the request both `cdktf deploy` (through the command line) and `push` run. */
export interface HostDeployRequest {
  readonly target: TargetSpec;
  readonly action: Action;
  readonly useSubstitutes: boolean;
  readonly compress: CompressMode;
  readonly maxChannels: number;
  readonly buildOnTarget: boolean;
  readonly installBootloader: boolean;
  readonly allowNonNixos: boolean;
  readonly rollback: boolean;
  /** undefined: no confirmation (the setting's 0). */
  readonly confirmTimeoutSeconds: number | undefined;
  readonly activationTimeoutSeconds: number;
  readonly replyTimeoutSeconds: number;
  readonly lockTimeoutSeconds: number;
  readonly keepGenerations: number | undefined;
  readonly reactivate: boolean;
  readonly acceptFailedUnits: boolean;
  readonly healthChecks: readonly ResolvedHealthCheck[];
  readonly systemdHealthCheck: boolean;
  /** The binary cache the closure goes through; undefined copies it to each host directly. */
  readonly cache: CacheSpec | undefined;
  /** Builds there instead of on this machine; the target spec of the build host (the deployment's login settings). */
  readonly buildHost: TargetSpec | undefined;
}

/** A deployment mapped for the engine: the request, and what is read on this machine before it runs. */
export interface MappedDeployment {
  readonly request: HostDeployRequest;
  /** Read locally (loadKeys) right before the deployment, never earlier. */
  readonly keys: readonly KeySpec[];
  readonly sensitiveArgs: readonly string[];
}

/**
 * The one mapping from a deployment's settings, the values Terraform applied and the command line's overrides (a
 * flag replaces a deployment's setting only when it was given) to what the engine runs.
 */
export function deployRequestOf(settings: ResolvedDeploymentSettings, applied: AppliedValues, overrides: SettingOverrides = {}): MappedDeployment {
  const s = withOverrides(settings, overrides);
  if (s.buildHost !== undefined && s.buildOnTarget) {
    throw new UserInputError(`--build-host ${s.buildHost} and --build-on-target say different machines build: give one of them`);
  }
  return {
    request: {
      target: {
        host: applied.host,
        user: s.user,
        port: s.port,
        ...loginOf(s),
        hostKeyFromEc2Console: applied.instanceId === undefined
          ? undefined
          : { instanceId: applied.instanceId, region: applied.region, endpoint: s.ec2Endpoint, timeoutSeconds: s.consoleTimeoutSeconds },
      },
      action: s.action,
      useSubstitutes: s.useSubstitutes,
      compress: s.compress,
      maxChannels: s.maxChannels,
      buildOnTarget: s.buildOnTarget,
      installBootloader: s.installBootloader,
      allowNonNixos: s.allowNonNixos,
      rollback: s.rollback,
      confirmTimeoutSeconds: s.confirmTimeoutSeconds > 0 ? s.confirmTimeoutSeconds : undefined,
      activationTimeoutSeconds: s.activationTimeoutSeconds,
      replyTimeoutSeconds: s.replyTimeoutSeconds,
      lockTimeoutSeconds: s.lockTimeoutSeconds,
      keepGenerations: s.keepGenerations,
      reactivate: s.reactivate,
      acceptFailedUnits: s.acceptFailedUnits,
      healthChecks: s.healthChecks,
      systemdHealthCheck: s.systemdHealthCheck,
      cache: cacheSpecOf(s),
      buildHost: s.buildHost === undefined ? undefined : buildHostTarget(parseJumpHost(s.buildHost, "--build-host"), s),
    },
    keys: s.keys,
    sensitiveArgs: s.sensitiveArgs,
  };
}

/** How a deployment logs in (key, known_hosts, bastion, retries), wherever: its host, and its build host. */
function loginOf(s: ResolvedDeploymentSettings) {
  return {
    privateKeyFile: s.sshPrivateKeyFile,
    knownHostsFile: s.knownHostsFile,
    acceptNewHostKey: s.acceptNewHostKey,
    jumpHost: s.jumpHost === undefined ? undefined : parseJumpHost(s.jumpHost),
    sshCompression: s.sshCompression,
    connectTimeoutSeconds: s.connectTimeoutSeconds,
  } satisfies Partial<TargetSpec>;
}

/** The build host is logged in to as the targets are, as its own `user@host:port`. */
function buildHostTarget(host: JumpHost, s: ResolvedDeploymentSettings): TargetSpec {
  return { host: host.host, port: host.port, user: host.user ?? s.user, ...loginOf(s) };
}
