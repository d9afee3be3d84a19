import { ValidationError } from "./validation-error";
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Annotations, AwsProvider, DataResource, DefaultTokenResolver, Lazy, StringConcat, TerraformStack, Token, Tokenization } from "./core";
import { hookStack } from "./stack-hooks";
import { Construct } from "constructs";
import { endpointProblem } from "../aws/endpoint";
import { ACTIONS } from "../spec/goal";
import { keyFilePath, keySpecsProblems, type KeySpec } from "../spec/key-spec";
import { resolveHealthCheck, type HealthCheck } from "../spec/health-check";
import { isHostName, isPort, parseJumpHost } from "../spec/target";
import { cacheSpecOf } from "../spec/cache";
import type { INixosBinaryCache } from "./nixos-binary-cache";
import { DEPLOY_ENV, MANIFEST_FILE, deploymentManifest, type DeploymentSettings, type DeploymentSpec } from "../spec/manifest";
import { deployArguments, renderCommand } from "../spec/command-line";
import { CONSTRUCT_DEFAULTS, DEFAULT_SETTINGS, type ResolvedDeploymentSettings } from "../spec/settings";
import { synthesisRecord, type SynthesisRecord } from "../spec/synthesis";
import { EvaluateError } from "../errors";
import { privateKeyFileProblem } from "../spec/private-key-file";
import { regionProblem } from "../aws/regions";
import { checkProps, deploymentProps, jsonValueProblem } from "./prop-types";
import { evaluateFleet, type EvaluatedSystem, type FleetMember } from "../nix/fleet-evaluation";
import { redactor } from "../redact";
import { cdkCli, flavour } from "../flavour";
import { absoluteFlakeRef, parseFlakeRef, reservedModuleArgsProblem } from "../nix/system";
import { withPlaceholders } from "./placeholders";

/** What switch-to-configuration does, in nixos-rebuild's words. */
export enum NixosAction {
  SWITCH = "switch",
  BOOT = "boot",
  TEST = "test",
  DRY_ACTIVATE = "dry-activate",
}

/** When a key is written to the host. */
export enum KeyUploadAt {
  /** After the closure is copied, before switch-to-configuration: services find the key when they start. */
  BEFORE_ACTIVATION = "before-activation",
  /** After activation succeeded: for a key whose user or group the new configuration creates. */
  AFTER_ACTIVATION = "after-activation",
}

/**
 * A file put on the host outside the Nix store, Terraform state and the command line (colmena's `deployment.keys`):
 * its content is read on the deploying machine each time the deployment runs and goes to the host through the SSH
 * connection. There is deliberately no literal `text`: it would be in the synthesized stack and Terraform state.
 */
export interface NixosKey {
  /** File name of the key in `destDir`. */
  readonly name: string;
  /**
   * A file on the deploying machine whose content is the key (relative paths resolve from the directory `cdktf synth`
   * runs in; read at deploy time, never at synth).
   * @default - none; give this or `command`
   */
  readonly file?: string;
  /**
   * A command run on the deploying machine at deploy time (argv, no shell), whose stdout is the key, e.g.
   * `["pass", "show", "db/password"]`.
   * @default - none; give this or `file`
   */
  readonly command?: string[];
  /** @default "/run/keys" (a tmpfs on NixOS: never written to disk, gone after a reboot until the next deploy) */
  readonly destDir?: string;
  /** @default "root" */
  readonly user?: string;
  /** @default "root" */
  readonly group?: string;
  /** Octal mode of the file. @default "0400" */
  readonly permissions?: string;
  /** @default KeyUploadAt.BEFORE_ACTIVATION */
  readonly uploadAt?: KeyUploadAt;
  /**
   * How long `command` may run before it is stopped and the deployment refused (a `pass` or `gpg` waiting for a
   * pinentry would otherwise hang `cdktf deploy`).
   * @default 60
   */
  readonly commandTimeoutSeconds?: number;
  /**
   * Replace a file at the key's path on the host that no key upload wrote (the host's own file, or a key changed on
   * the host since it was uploaded).
   * @default false - such a file is left alone and the deployment stops, naming it
   */
  readonly replaceExisting?: boolean;
}

/** How a deployment finds its system and reaches its host; shared by NixosDeployment and NixosInstance's `nixos`. */
export interface NixosDeploymentOptions {
  /**
   * configuration.nix of the host (relative paths resolve from the directory `cdktf synth` runs in).
   * @default - none; give this or `flake`
   */
  readonly configuration?: string;
  /**
   * Pinned NIX_PATH entries for `configuration`, e.g. `{ nixpkgs: "/path/to/nixpkgs" }`.
   * @default - none (the evaluation then fails unless NIX_PATH is set in the environment)
   */
  readonly nixPath?: { [name: string]: string };
  /**
   * A flake configuration, `path:/abs/dir#name` or `./dir#name` (nixosConfigurations.name).
   * @default - none; give this or `configuration`
   */
  readonly flake?: string;
  /**
   * Values that become NixOS module arguments (`{ config, peers, ... }:`); may be Terraform values known only after
   * apply, such as another instance's private IP. Changing one redeploys exactly the hosts that use it.
   * @default - none
   */
  // jsii has no union type for "string, number, list or map": `any` is how such a map is spelled for every language.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly nixosArgs?: { [name: string]: any };
  /**
   * Names of `nixosArgs` whose values are taken out of every message cdktf-nixos prints (Nix shows a value in some
   * errors). They are still in Terraform state and, when the configuration uses them in a file, in the Nix store: for
   * secrets use `keys`.
   * @default - none
   */
  readonly sensitiveArgs?: string[];
  /**
   * Files put on the host outside the Nix store at every deployment (secrets): see NixosKey.
   * @default - none
   */
  readonly keys?: NixosKey[];
  /** @default NixosAction.SWITCH */
  readonly action?: NixosAction;
  /** @default "root" */
  readonly user?: string;
  /** @default 22 */
  readonly port?: number;
  /**
   * Private key to log in with (never read at synth, never put into Terraform state).
   * @default - ssh-agent (SSH_AUTH_SOCK)
   */
  readonly sshPrivateKeyFile?: string;
  /**
   * The OpenSSH known_hosts file host keys are checked against and recorded in.
   * @default ".cdktf-nixos/known_hosts" in the directory `cdktf synth` runs in
   */
  readonly knownHostsFile?: string;
  /**
   * Trust a host key the known_hosts file does not have yet without any other check (trust on first use). Without
   * `instanceId`, a new host is refused unless this is set.
   * @default false
   */
  readonly acceptNewHostKey?: boolean;
  /** @default false */
  readonly useSubstitutes?: boolean;
  /** Build on the host instead of this machine (for a host of another architecture). @default false */
  readonly buildOnTarget?: boolean;
  /**
   * Tags for selecting hosts of the stack (written to the deployment manifest).
   * @default - none (a NixosInstance passes its own tags)
   */
  readonly tags?: { [key: string]: string };
  /**
   * How long to retry SSH while the host boots.
   * @default 300
   */
  readonly connectTimeoutSeconds?: number;
  /**
   * Magic rollback for switch and test: the host must accept a new SSH connection within this many seconds after
   * activating, or it rolls itself back to the system it ran before. 0 turns it off.
   * @default 30
   */
  readonly confirmTimeoutSeconds?: number;
  /**
   * After a switch or boot, delete all but the newest this many system generations (`nix-env --delete-generations
   * +N`), so the host's store can be garbage-collected.
   * @default - keep every generation
   */
  readonly keepGenerations?: number;
  /**
   * Keep a new system whose only failure is failed systemd units (switch-to-configuration's exit 4, as NixOS returns
   * when a service does not start) instead of rolling the host back. The failed units are reported either way.
   * @default false
   */
  readonly acceptFailedUnits?: boolean;
  /**
   * Checks a new system must pass after switch or test, before it is confirmed: a command run on the host (argv, no
   * shell, as the login user) or an HTTP GET (from the host, through the SSH connection, or from the deploying
   * machine), each with a timeout, retries and an interval. A check that fails makes the host roll back at once, and
   * the deployment fails naming the check and what it saw. E.g. `[{ command: ["systemctl", "is-active", "nginx"] },
   * { http: { url: "http://localhost/health", bodyContains: "ok" } }]`.
   * @default - none (systemd's own check still runs: see systemdHealthCheck)
   */
  readonly healthChecks?: HealthCheck[];
  /**
   * Before confirming a switch or test, check systemd: `systemctl is-system-running` not degraded and no failed
   * unit (their names and last journal lines are reported). Skipped, and said so, on a host without systemd.
   * @default true
   */
  readonly systemdHealthCheck?: boolean;
  /**
   * zstd on the copy's data stream. AUTO compresses on far links (where the copy uses several SSH channels) while
   * the link is slower than zstd; ZSTD always (needs zstd on both machines); NONE never.
   * @default CopyCompression.AUTO
   */
  readonly compress?: CopyCompression;
  /**
   * A binary cache the closure goes through (a NixosBinaryCache, or NixosBinaryCache.fromUrl's): the deployment
   * uploads what the cache lacks (signed with its signingKeyFile, or by its pushCommand), the host fetches its closure
   * from the cache's substituter, and what the cache cannot give it is copied directly.
   * @default - the closure is copied to the host directly
   */
  readonly binaryCache?: INixosBinaryCache;
  /**
   * `[user@]host[:port]` that builds the system instead of the machine running the deployment (nixos-rebuild's
   * --build-host), logged in to with this deployment's key and known_hosts; the outputs go from there to the
   * binary cache, or to the host.
   * @default - built on the machine running the deployment
   */
  readonly buildHost?: string;
}

/** zstd on a deployment's copy (`cdktf-nixos deploy --compress`). */
export enum CopyCompression {
  AUTO = "auto",
  ZSTD = "zstd",
  NONE = "none",
}

export interface NixosDeploymentProps extends NixosDeploymentOptions {
  /** Address of the host; may be a Terraform value known only after apply. */
  readonly host: string;
  /**
   * EC2 instance whose console output lists the host key fingerprints: the host key is verified against them on
   * first contact instead of being trusted.
   * @default - none
   */
  readonly instanceId?: string;
  /**
   * Region of `instanceId`.
   * @default - AWS_REGION of the environment Terraform runs in
   */
  readonly region?: string;
  /**
   * EC2 endpoint the console check of `instanceId` calls (an EC2-compatible API, a local test double).
   * @default - the `ec2` entry of the `endpoints` block of the stack's AwsProvider, when it has one; else AWS's
   *   (or AWS_ENDPOINT_URL_EC2)
   */
  readonly ec2Endpoint?: string;
}

/**
 * Puts a NixOS configuration on a host from `terraform apply`: a `terraform_data` resource whose trigger is the
 * system's derivation (evaluated at synth, one Nix evaluation for every deployment of the stack), the injected
 * values and the deploy settings, and whose local-exec provisioner runs `cdktf-nixos deploy`.
 */
export class NixosDeployment extends Construct {
  /** The system's derivation path at synth (with placeholders for apply-time nixosArgs). */
  readonly drvPath: string;
  readonly resource: DataResource;
  /** How this deployment deploys: every setting, defaults applied (what the manifest and the deploy command carry). */
  readonly settings: ResolvedDeploymentSettings;

  constructor(scope: Construct, id: string, props: NixosDeploymentProps) {
    super(scope, id);
    const path = this.node.path;
    validateDeploymentProps(this, props);
    const port = props.port ?? DEFAULT_SETTINGS.port;
    if (props.instanceId === undefined && props.acceptNewHostKey !== true) {
      Annotations.of(this).addInfo("no instanceId: the host key must already be in the known_hosts file");
    }
    if (props.acceptNewHostKey === true) {
      Annotations.of(this).addWarning(`${path}: acceptNewHostKey trusts a new host's key on first use, unverified`);
    }
    for (const key of props.keys ?? []) {
      // read at deploy time, not now (a CI job may synthesize without secrets), but a missing one is worth a word
      if (key.file !== undefined && !Token.isUnresolved(key.file) && !existsSync(keyFilePath(key.file))) {
        Annotations.of(this).addWarning(`${path}: key "${key.name}": file ${keyFilePath(key.file)} does not exist yet; the deployment reads it when it runs`);
      }
    }
    const configuration = props.configuration === undefined ? undefined : resolve(props.configuration);
    const nixPath = Object.fromEntries(Object.entries(props.nixPath ?? {}).map(([name, path]) => [name, resolvePathEntry(path)]));
    const flake = props.flake === undefined ? undefined : absoluteFlakeRef(props.flake);
    const args = props.nixosArgs ?? {};
    const stack = TerraformStack.of(this);
    const fleet = StackDeployments.of(stack);
    const other = fleet.claimHost(`${props.host}:${port}`, path);
    if (other !== undefined) {
      Annotations.of(this).addWarning(`${path}: deploys to the same host as ${other} (${props.host}, port ${port}): ` +
        "each apply and push would put one system on it and then the other");
    }
    const synthArgs = withPlaceholders(args);
    const sensitiveArgs = props.sensitiveArgs ?? [];
    const evaluated = fleet.evaluation(
      { name: this.node.path, configuration, flake, nixPath, moduleArgs: synthArgs },
      Object.fromEntries(sensitiveArgs.map((name) => [`nixosArgs.${name}`, args[name]])),
    );
    this.drvPath = Lazy.stringValue({ produce: () => evaluated().drvPath });

    const keys: KeySpec[] = props.keys ?? [];
    // every setting resolved once, here: the manifest, the local-exec command line and push all read these values
    const settings: DeploymentSettings = {
      ...DEFAULT_SETTINGS,
      id: this.node.path,
      host: props.host,
      source: configuration !== undefined ? { configuration, nixPath } : { flake },
      nixosArgs: args,
      nixosArgsAtSynth: synthArgs,
      instanceId: props.instanceId,
      region: props.region,
      tags: props.tags ?? {},
      user: props.user ?? DEFAULT_SETTINGS.user,
      port,
      action: props.action ?? DEFAULT_SETTINGS.action,
      sshPrivateKeyFile: props.sshPrivateKeyFile === undefined ? undefined : resolve(props.sshPrivateKeyFile),
      knownHostsFile: resolve(props.knownHostsFile ?? CONSTRUCT_DEFAULTS.knownHostsFile),
      acceptNewHostKey: props.acceptNewHostKey === true,
      ec2Endpoint: props.ec2Endpoint ?? providerEc2Endpoint(stack),
      useSubstitutes: props.useSubstitutes === true,
      compress: props.compress ?? DEFAULT_SETTINGS.compress,
      buildOnTarget: props.buildOnTarget === true,
      connectTimeoutSeconds: props.connectTimeoutSeconds ?? CONSTRUCT_DEFAULTS.connectTimeoutSeconds,
      confirmTimeoutSeconds: props.confirmTimeoutSeconds ?? CONSTRUCT_DEFAULTS.confirmTimeoutSeconds,
      keepGenerations: props.keepGenerations,
      acceptFailedUnits: props.acceptFailedUnits === true,
      healthChecks: (props.healthChecks ?? []).map((check, i) => resolveHealthCheck(check, `healthChecks[${i}]`)),
      systemdHealthCheck: props.systemdHealthCheck ?? DEFAULT_SETTINGS.systemdHealthCheck,
      cache: props.binaryCache?.url,
      cacheSubstituter: props.binaryCache === undefined || props.binaryCache.substituter === props.binaryCache.url ? undefined : props.binaryCache.substituter,
      cacheSigningKeyFile: props.binaryCache?.signingKeyFile,
      cachePublicKey: props.binaryCache?.publicKey,
      cachePushCommand: props.binaryCache?.pushCommand,
      buildHost: props.buildHost,
      sensitiveArgs,
      keys: keys.map((key) => ({ ...key, file: key.file === undefined ? undefined : keyFilePath(key.file) })),
    };
    this.settings = Object.freeze(Object.fromEntries(Object.keys(DEFAULT_SETTINGS).map((name) => [name, settings[name as keyof ResolvedDeploymentSettings]]))) as unknown as ResolvedDeploymentSettings;
    const { user, action } = settings;
    const command = renderCommand([process.execPath, cliPath(), ...deployArguments(settings)]);

    this.resource = new DataResource(this, "Resource", {
      input: {
        target: `${user}@${props.host}`,
        nixos_args: args,
        instance_id: props.instanceId ?? "",
        region: props.region ?? "",
      },
      // What replaces the resource, and so deploys again: what the host ends up running (the derivation, module
      // arguments, action), where and as whom (target, port, instance) and what is put on it (keys, by spec). Settings
      // of how a deploy runs (timeouts, compression, channels, generations kept) are not here: changing one must not
      // re-activate a fleet; it applies from the next deployment that runs anyway, and to every push at once.
      triggersReplace: {
        drv_path: this.drvPath,
        nixos_args: args,
        settings: {
          target: `${user}@${props.host}`, port, action, instance_id: props.instanceId ?? "", build_on_target: props.buildOnTarget === true,
          // where keys go and come from (never their content): a changed spec uploads them again
          ...(keys.length > 0 ? { keys: JSON.stringify(settings.keys) } : {}),
        },
      },
    });
    this.resource.addOverride("provisioner", [{
      "local-exec": {
        command,
        environment: {
          [DEPLOY_ENV.targetHost]: "${self.input.target}",
          [DEPLOY_ENV.moduleArgsJson]: "${jsonencode(self.input.nixos_args)}",
          [DEPLOY_ENV.instanceId]: "${self.input.instance_id}",
          [DEPLOY_ENV.region]: "${self.input.region}",
        },
      },
    }]);
    if (props.instanceId !== undefined) {
      // Lives as long as the instance (replaced only with it): when Terraform destroys or replaces the instance, the
      // host key recorded for it goes, so whatever answers at its address next is checked afresh.
      const hostKeys = new DataResource(this, "HostKeyRecord", {
        input: { instance_id: props.instanceId, known_hosts: settings.knownHostsFile },
        triggersReplace: { instance_id: props.instanceId },
      });
      hostKeys.addOverride("provisioner", [{
        "local-exec": {
          when: "destroy",
          command: renderCommand([process.execPath, cliPath(), "forget-host-keys", "--known-hosts", settings.knownHostsFile,
            "--instance-id", { env: DEPLOY_ENV.instanceId }]),
          environment: { [DEPLOY_ENV.instanceId]: "${self.input.instance_id}" },
        },
      }]);
    }
    fleet.addSpec(() => {
      const system = evaluated();
      // Tokens become the Terraform expressions they stand for, e.g. ${aws_instance.web_Instance_1A2B.public_ip}.
      const resolved = Tokenization.resolve({
        ...settings,
        resource: `${this.resource.terraformResourceType}.${this.resource.friendlyUniqueId}`,
        drvPath: system.drvPath,
        system: system.system,
      }, { scope: stack, resolver: new DefaultTokenResolver(new StringConcat()) }) as DeploymentSpec;
      // resolving drops empty maps; the manifest keeps every field
      return {
        ...resolved,
        nixosArgs: resolved.nixosArgs ?? {},
        nixosArgsAtSynth: resolved.nixosArgsAtSynth ?? {},
        tags: resolved.tags ?? {},
        sensitiveArgs: resolved.sensitiveArgs ?? [],
        keys: resolved.keys ?? [],
      };
    });
  }
}

/** What this synthesis was made from: the same for every stack of the app. */
let synthesis: SynthesisRecord | undefined;

/**
 * The deployments of one stack: one Nix evaluation for all of them, run the first time any derivation is needed,
 * and the deployment manifest, written next to the stack's cdk.tf.json when it is synthesized.
 */
export class StackDeployments {
  private static readonly byStack = new WeakMap<TerraformStack, StackDeployments>();
  private readonly members: FleetMember[] = [];
  /** What constructs check of the evaluated systems (an image's architecture), before any token resolves. */
  private readonly checks: Array<() => void> = [];
  private readonly sensitive: Record<string, unknown> = {};
  private readonly specs: Array<() => DeploymentSpec> = [];
  private results?: Map<string, EvaluatedSystem>;

  private constructor(stack: TerraformStack) {
    hookStack(stack, {
      // evaluate before cdktf resolves tokens: an evaluation error thrown while it resolves drvPath would come wrapped
      // in "Resolution error" and a long creation stack
      beforePrepare: () => {
        this.results ??= this.evaluate();
        for (const check of this.checks) check();
      },
      afterSynthesize: (stackName, stackDir) => {
        // the app's process knows what it loaded: its modules are the sources a later push compares
        synthesis ??= synthesisRecord(process.cwd(), Object.keys(require.cache));
        const content = deploymentManifest(stackName, this.specs.map((spec) => spec()), synthesis);
        writeFileSync(join(stackDir, MANIFEST_FILE), `${JSON.stringify(content, null, 2)}\n`);
      },
    });
  }

  static of(stack: TerraformStack): StackDeployments {
    let deployments = StackDeployments.byStack.get(stack);
    if (deployments === undefined) {
      deployments = new StackDeployments(stack);
      StackDeployments.byStack.set(stack, deployments);
    }
    return deployments;
  }

  evaluation(member: FleetMember, sensitive: Record<string, unknown>): () => EvaluatedSystem {
    this.members.push(member);
    Object.assign(this.sensitive, sensitive);
    this.results = undefined;
    return () => {
      this.results ??= this.evaluate();
      return this.results.get(member.name)!;
    };
  }

  /**
   * One evaluation of every member. A Nix error becomes one short message (construct, Nix's first error line and
   * where it points) without a JavaScript stack: the full trace with CDKTF_NIXOS_SHOW_TRACE=1.
   */
  private evaluate(): Map<string, EvaluatedSystem> {
    const showTrace = process.env.CDKTF_NIXOS_SHOW_TRACE === "1";
    try {
      return evaluateFleet(this.members, { extraArgs: showTrace ? ["--show-trace"] : [], redact: redactor(this.sensitive) });
    } catch (err) {
      if (!(err instanceof EvaluateError)) throw err;
      const hint = err.hint === undefined ? "" : `\n  hint: ${err.hint}`;
      const error = new Error(showTrace
        ? `${err.message}${hint}\n${err.stderr ?? ""}`
        : `${err.message}${hint}\n  (Nix's full trace: CDKTF_NIXOS_SHOW_TRACE=1 ${cdkCli()} synth)`);
      if (!showTrace) error.stack = `Error: ${error.message}`;
      throw error;
    }
  }

  /** Runs `check` once the stack's systems are evaluated, before cdktf resolves any token of the stack. */
  afterEvaluation(check: () => void): void {
    this.checks.push(check);
  }

  private readonly hosts = new Map<string, string>();

  /** Records which deployment goes to `host` (a literal or a token's text); returns the one that already does. */
  claimHost(host: string, path: string): string | undefined {
    const other = this.hosts.get(host);
    if (other === undefined) this.hosts.set(host, path);
    return other;
  }

  addSpec(spec: () => DeploymentSpec): void {
    this.specs.push(spec);
  }
}

/**
 * The `ec2` endpoint of the stack's AWS provider (the one without an alias), so the deploy step's console check asks
 * the same EC2 that Terraform created the instance in.
 */
function providerEc2Endpoint(stack: TerraformStack): string | undefined {
  const providers = stack.node.findAll().filter((c): c is AwsProvider => c instanceof AwsProvider && c.alias === undefined);
  const endpoints = providers[0]?.endpoints;
  if (!Array.isArray(endpoints)) return undefined;
  const ec2 = endpoints.map((e) => e.ec2).find((e) => e !== undefined);
  return ec2 === undefined || Token.isUnresolved(ec2) ? undefined : ec2;
}

/** Everything wrong with a deployment's props that can be seen at synth; values Terraform knows only later pass. */
function validateDeploymentProps(scope: NixosDeployment, props: NixosDeploymentProps): void {
  const path = scope.node.path;
  const fail = (message: string) => {
    throw new ValidationError(message, scope);
  };
  if (props === undefined || props === null) fail("props are required: host, and configuration or flake");
  checkProps(`${path} (NixosDeployment)`, deploymentProps, props);
  for (const [name, value] of Object.entries(props.nixosArgs ?? {})) {
    const problem = jsonValueProblem(value, `nixosArgs.${name}`);
    if (problem !== undefined) fail(problem);
  }
  (props.healthChecks ?? []).forEach((check, i) => {
    try {
      resolveHealthCheck(check, `healthChecks[${i}]`);
    } catch (err) {
      fail((err as Error).message);
    }
  });
  if (props.user !== undefined && !Token.isUnresolved(props.user) && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(props.user)) {
    fail(`user ${JSON.stringify(props.user)} is not a user name (letters, digits, _ . -; the host goes in \`host\`)`);
  }
  if (props.instanceId !== undefined && !Token.isUnresolved(props.instanceId) && !/^i-[0-9a-f]{8}([0-9a-f]{9})?$/.test(props.instanceId)) {
    fail(`instanceId ${JSON.stringify(props.instanceId)} is not an EC2 instance ID (i-0123456789abcdef0); give instance.instanceId`);
  }
  const region = props.region === undefined || Token.isUnresolved(props.region) ? undefined : regionProblem(props.region);
  if (region !== undefined) fail(`region ${region}`);
  if ((props.configuration === undefined) === (props.flake === undefined)) fail("give exactly one of configuration and flake");
  if (props.flake !== undefined && props.nixosArgs !== undefined) {
    fail("nixosArgs works with configuration; a flake takes values through specialArgs in flake.nix");
  }
  if (props.flake !== undefined && parseFlakeRef(props.flake) === undefined) fail(`flake "${props.flake}" is not REF#NAME (e.g. "./infra#web")`);
  if (props.configuration !== undefined && !existsSync(resolve(props.configuration))) {
    fail(`configuration "${props.configuration}" does not exist (looked at ${resolve(props.configuration)})`);
  }
  if (!Token.isUnresolved(props.host)) {
    if (typeof props.host !== "string" || props.host.trim() === "") fail(`host is empty; give the instance's address (e.g. instance.publicIp)`);
    if (/^[^:[\]]+:\d+$/.test(props.host) || /^\[.*\]:\d+$/.test(props.host)) fail(`host "${props.host}" includes a port; give the address alone and the port as \`port\``);
    if (/^\[.*\]$/.test(props.host)) fail(`host "${props.host}": give an IPv6 address without brackets ("${props.host.slice(1, -1)}")`);
    if (!isHostName(props.host)) fail(`host "${props.host}" is not a host name or IP address${props.host.includes("@") ? " (the user goes in `user`)" : ""}`);
  }
  if (props.buildHost !== undefined && !Token.isUnresolved(props.buildHost)) {
    try {
      parseJumpHost(props.buildHost, "buildHost");
    } catch (err) {
      fail((err as Error).message);
    }
  }
  if (props.binaryCache !== undefined) {
    const cache = props.binaryCache;
    try {
      cacheSpecOf({ cache: cache.url, cacheSubstituter: cache.substituter, cacheSigningKeyFile: cache.signingKeyFile, cachePublicKey: cache.publicKey, cachePushCommand: cache.pushCommand });
    } catch (err) {
      fail(`binaryCache: ${(err as Error).message}`);
    }
  }
  const action = props.action ?? NixosAction.SWITCH;
  if (!(ACTIONS as readonly string[]).includes(action)) fail(`action "${action}" is not one of ${ACTIONS.join(", ")}`);
  const confirmTimeout = props.confirmTimeoutSeconds ?? CONSTRUCT_DEFAULTS.confirmTimeoutSeconds;
  if (!Number.isInteger(confirmTimeout) || confirmTimeout < 0) fail(`confirmTimeoutSeconds ${confirmTimeout} is not a whole number of seconds (0 turns it off)`);
  const connectTimeout = props.connectTimeoutSeconds ?? CONSTRUCT_DEFAULTS.connectTimeoutSeconds;
  if (!Token.isUnresolved(connectTimeout) && !(Number.isFinite(connectTimeout) && connectTimeout >= 0)) {
    fail(`connectTimeoutSeconds ${connectTimeout} is not a number of seconds (0 or more)`);
  }
  if (props.keepGenerations !== undefined && !(Number.isInteger(props.keepGenerations) && props.keepGenerations >= 1)) {
    fail(`keepGenerations ${props.keepGenerations} is not a whole number of at least 1 (the new generation always stays)`);
  }
  if (props.compress !== undefined && !Object.values(CopyCompression).includes(props.compress)) {
    fail(`compress '${props.compress}' is not one of ${Object.values(CopyCompression).join(", ")} (CopyCompression.AUTO, ZSTD or NONE)`);
  }
  const port = props.port ?? DEFAULT_SETTINGS.port;
  if (!Token.isUnresolved(port) && !isPort(port)) fail(`port ${port} is not a port number (1-65535)`);
  const endpoint = props.ec2Endpoint === undefined || Token.isUnresolved(props.ec2Endpoint) ? undefined : endpointProblem(props.ec2Endpoint);
  if (endpoint !== undefined) fail(`ec2Endpoint ${endpoint}`);
  if (props.sshPrivateKeyFile !== undefined && !Token.isUnresolved(props.sshPrivateKeyFile)) {
    const file = resolve(props.sshPrivateKeyFile);
    const problem = privateKeyFileProblem(file);
    if (problem !== undefined) {
      fail(`sshPrivateKeyFile "${props.sshPrivateKeyFile}" ${problem}${file === props.sshPrivateKeyFile ? "" : ` (looked at ${file})`}` +
        (problem === "does not exist" ? "; leave it out to log in through ssh-agent" : ""));
    }
  }
  const reserved = reservedModuleArgsProblem(Object.keys(props.nixosArgs ?? {}));
  if (reserved !== undefined) fail(reserved);
  const unknownSensitive = (props.sensitiveArgs ?? []).filter((name) => !(name in (props.nixosArgs ?? {})));
  if (unknownSensitive.length > 0) fail(`sensitiveArgs ${unknownSensitive.map((n) => `"${n}"`).join(", ")} are not nixosArgs`);
  const keyProblems = keySpecsProblems(props.keys ?? []);
  if (keyProblems.length > 0) fail(keyProblems.join("; "));
}

/** The CLI of this installation, by absolute path, so Terraform finds it from cdktf.out/stacks/<stack>. */
export function cliPath(): string {
  const { packageDir, packageName } = flavour();
  const bin = join(packageDir, "lib", "cli", "bin.js");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build ${packageName} first (npm run build)`);
  return bin;
}

function resolvePathEntry(path: string): string {
  return /^[a-z]+:/.test(path) ? path : resolve(path);
}

