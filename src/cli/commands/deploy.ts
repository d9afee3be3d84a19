import { Command, Option } from "commander";
import { COMPRESS_MODES, type CompressMode } from "../../nix/serve/copy-policy";
import { localZstdAvailable } from "../../nix/zstd";
import { endpointProblem } from "../../aws/endpoint";
import { regionProblem } from "../../aws/regions";
import { readFile, readlink, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { deploy, type DeployDependencies, type DeployRequest } from "../../deploy/deploy";
import type { DefaultDependencyOptions } from "../../deploy/default-dependencies";
import { ACTIONS } from "../../spec/goal";
import { loadKeys } from "../../deploy/keys";
import { checkKeySpecs, parseKeyArgument } from "../../spec/key-spec";
import { DEPLOY_ENV } from "../../spec/manifest";
import { parseTargetHost } from "../../spec/target";
import { parseFlakeRef, reservedModuleArgsProblem, type SystemSource } from "../../nix/system";
import { redactor } from "../../redact";
import { collect, interruptible } from "../interruptible";
import { createReporter, type Output } from "../progress";
import { DEFAULT_SETTINGS, withOverrides } from "../../spec/settings";
import { deployRequestOf, type MappedDeployment } from "../../spec/request";
import { settingsGiven } from "../../spec/command-line";
import { knownHostsFileProblem } from "../../deploy/ssh/known-hosts";
import { tooDeep } from "../../nix/system";
import { UsageError } from "../usage-error";

/**
 * The flags this command reads itself; every deployment setting's flag (SETTING_FLAGS) is read through
 * settingsGiven, which takes it only when it was given.
 */
interface DeployFlags {
  targetHost?: string;
  knownHosts?: string;
  toplevel?: string;
  config?: string;
  include: string[];
  flake?: string;
  nixosArgsFile?: string;
  hostKeyFromEc2Console?: string;
  region?: string;
  key: string[];
  showTrace?: boolean;
  verbose?: boolean;
  json?: boolean;
}

/** A parsed and checked `deploy` command line: everything is known before anything is built or contacted. */
export interface DeployInvocation {
  readonly request: Omit<DeployRequest, "onEvent">;
  readonly dependencyOptions: DefaultDependencyOptions;
  readonly json: boolean;
}

/** Builds the deploy engine's dependencies; tests pass fakes of the seams. */
export type DependencyFactory = (options: DefaultDependencyOptions) => DeployDependencies;

/** The `deploy` subcommand's options; the command line NixosDeployment writes is parsed by exactly these. */
export function addDeployOptions(command: Command): Command {
  return command
    .addOption(new Option("--target-host <[user@]host>", "host to deploy to").env(DEPLOY_ENV.targetHost))
    .option("--target-port <port>", `SSH port of the target (default: ${DEFAULT_SETTINGS.port})`)
    .option("--ssh-key <file>", "private key to log in with (default: ssh-agent via SSH_AUTH_SOCK)")
    .option("--known-hosts <file>", "OpenSSH known_hosts file the host key must be in (default: ~/.ssh/known_hosts)")
    .option("--accept-new-host-key", "record the key of a host the known_hosts file does not know yet (never a changed key)")
    .option("--jump-host <[user@]host[:port]>", "connect through this bastion (like ssh -J)")
    .addOption(new Option("--action <action>", "what switch-to-configuration does").choices(ACTIONS).default(DEFAULT_SETTINGS.action))
    .option("--use-substitutes", "let the target download paths from its binary caches instead of copying them")
    .addOption(new Option("--compress <mode>", "zstd on the copy: auto (when the link is slower than zstd), zstd (always) or none").choices(COMPRESS_MODES).default(DEFAULT_SETTINGS.compress))
    .option("--max-channels <n>", "SSH channels a far target's copy may use at most (1 = never the spool)", String(DEFAULT_SETTINGS.maxChannels))
    .option("--ssh-compression", "zlib on the whole SSH connection (ssh -C): slow, ~25 MiB/s at most; prefer --compress zstd")
    .option("--cache <url>", "upload the closure once to this binary cache (s3://BUCKET?region=…[&endpoint=…], file:///DIR) and let every host fetch it from there")
    .option("--cache-substituter <url>", "where hosts fetch the cache from, when not at --cache itself (e.g. its https address)")
    .option("--cache-signing-key <file>", "sign what is uploaded with this secret key (nix-store --generate-binary-cache-key's); hosts trust its public half")
    .option("--cache-public-key <name:base64>", "the key hosts trust for the cache (default: derived from --cache-signing-key)")
    .option("--cache-push-command <command>", "upload with this command instead (store paths appended as arguments), e.g. 'cachix push NAME' or 'attic push NAME'")
    .option("--build-host <[user@]host[:port]>", "build on this host instead of this machine (nixos-rebuild's --build-host); the outputs go from there to the cache or the hosts")
    .option("--build-on-target", "copy the derivations and build on the target (for a target of another architecture)")
    .option("--install-bootloader", "reinstall the boot loader (NIXOS_INSTALL_BOOTLOADER=1)")
    .option("--no-rollback", "leave the target as it is when activation fails")
    .option("--confirm-timeout <seconds>", "switch/test: confirm over a new SSH connection within this time, or the target rolls itself back (magic rollback); 0: no confirmation", String(DEFAULT_SETTINGS.confirmTimeoutSeconds))
    .option("--activation-timeout <seconds>", "give up waiting for activation after this long", String(DEFAULT_SETTINGS.activationTimeoutSeconds))
    .option("--lock-timeout <seconds>", "wait this long for another deployment to the same host to finish", String(DEFAULT_SETTINGS.lockTimeoutSeconds))
    .option("--reply-timeout <seconds>", "give up on a host that leaves a question unanswered this long (inspection, store queries, replies during the copy, key uploads)", String(DEFAULT_SETTINGS.replyTimeoutSeconds))
    .option("--keep-generations <n>", "after a switch or boot, delete all but the newest N system generations (nix-env --delete-generations +N)")
    .option("--reactivate", "activate even when the host already runs this system (default: report it up to date and leave it)")
    .option("--accept-failed-units", "keep a new system whose only failure is failed systemd units (switch-to-configuration exit 4); by default it is rolled back")
    .option("--health-check <command>", "switch/test: a command (argv, quoted like a shell) the new system must pass on the target " +
      "before it is confirmed, or the host rolls back; or a whole check as JSON, e.g. " +
      '\'{"http":{"url":"http://localhost/health"}}\'; repeatable', collect, [])
    .option("--no-systemd-health-check", "do not check systemd (is-system-running not degraded, no failed units) before confirming")
    .option("--allow-non-nixos", "deploy onto a host that does not look like NixOS yet")
    .option("--toplevel <store-path>", "deploy this already built system")
    .option("--config <file>", "build <nixpkgs/nixos> with this configuration.nix")
    .option("-I, --include <name=path>", "add a NIX_PATH entry for --config (repeatable)", collect, [])
    .option("--flake <ref#name>", "build nixosConfigurations.<name> of this flake")
    .addOption(
      new Option("--nixos-args-file <file.json>", `JSON object whose keys become NixOS module arguments (default: $${DEPLOY_ENV.moduleArgsJson})`)
        .conflicts(["toplevel"]),
    )
    .option("--host-key-from-ec2-console <instance-id>", "trust only the host key whose fingerprint this EC2 instance printed on its console")
    .option("--region <region>", "AWS region of --host-key-from-ec2-console (default: AWS_REGION / the profile's)")
    .option("--endpoint <url>", "EC2 endpoint for --host-key-from-ec2-console (default: AWS, or AWS_ENDPOINT_URL_EC2)")
    .option("--console-timeout <seconds>", "how long to wait for the console to show the fingerprints", String(DEFAULT_SETTINGS.consoleTimeoutSeconds))
    .option("--connect-timeout <seconds>", "keep retrying an unreachable host this long (it may be booting)", String(DEFAULT_SETTINGS.connectTimeoutSeconds))
    .option("--key <name=file>", "put FILE's content on the host as /run/keys/NAME (root, 0400) before activation; repeatable", collect, [])
    .option("--key-spec <json>", "a key with every setting, as NixosDeployment writes it: " +
      '\'{"name":"db", "file":"./db.pw", "user":"postgres", "permissions":"0440", "uploadAt":"after-activation"}\' ' +
      "(fields: name, file or command, destDir, user, group, permissions, uploadAt, commandTimeoutSeconds, replaceExisting); repeatable", collect, [])
    .option("--sensitive-arg <name>", "take the value of this module argument out of every message; repeatable", collect, [])
    .option("--show-trace", "pass --show-trace to Nix: the full evaluation trace in errors")
    .option("--verbose", "print everything Nix says while it builds")
    .option("--json", "print one JSON object with the result (or the failure) as the last line of stdout");
}

export function registerDeployCommand(program: Command, output: Output, dependencies: DependencyFactory): void {
  addDeployOptions(program.command("deploy"))
    .description(
      "build a NixOS system locally, copy its closure to the target over SSH and activate it (like nixos-rebuild --target-host)",
    )
    .action(async (flags: DeployFlags, command: Command) => {
      const invocation = await deployInvocation(flags, givenOn(command));
      const reporter = createReporter(output, { json: invocation.json, verbose: flags.verbose === true });
      const deps = dependencies({ ...invocation.dependencyOptions, onLog: reporter.nixLog });
      const loginProblem = await deps.checkLogin?.(invocation.request.target);
      if (loginProblem !== undefined) throw new UsageError(loginProblem);
      // Ctrl-C / TERM: the terminal back as it was and the host's state said
      const result = await interruptible(reporter.interrupted, async () => {
        try {
          return await deploy({ ...invocation.request, onEvent: reporter.onEvent }, deps);
        } catch (err) {
          reporter.stop();
          reporter.failed(err);
          throw err;
        } finally {
          reporter.stop();
        }
      });
      reporter.done(result);
    });
}

/** Parses `deploy` arguments (after the word "deploy") into an invocation without running it. */
export async function parseDeployArguments(args: readonly string[]): Promise<DeployInvocation> {
  let parsed: DeployInvocation | undefined;
  const command = addDeployOptions(new Command("deploy"))
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined })
    .action(async (flags: DeployFlags, parsedCommand: Command) => {
      parsed = await deployInvocation(flags, givenOn(parsedCommand));
    });
  await command.parseAsync([...args], { from: "user" });
  return parsed!;
}

/** Whether a flag was set on the command line or in its environment variable (not commander's default). */
export function givenOn(command: Command): (attribute: string) => boolean {
  return (attribute) => ["cli", "env"].includes(command.getOptionValueSource(attribute) ?? "");
}

/** Checks every flag and reads the module arguments: all usage errors surface here, before any build or connection. */
export async function deployInvocation(flags: DeployFlags, given: (attribute: string) => boolean): Promise<DeployInvocation> {
  const request = deployRequest(flags, given);
  const moduleArgsJson = await moduleArgs(flags);
  if (moduleArgsJson !== undefined && request.source.kind === "flake") {
    throw new UsageError("module arguments (--nixos-args-file, $" + DEPLOY_ENV.moduleArgsJson + ") work with --config only; " +
      "a flake takes such values through specialArgs in its flake.nix");
  }
  const source = await checkedSource(request.source);
  const args = moduleArgsJson === undefined ? {} : JSON.parse(moduleArgsJson) as Record<string, unknown>;
  const unknownSensitive = request.sensitiveArgs.filter((name) => !(name in args));
  if (unknownSensitive.length > 0) {
    throw new UsageError(`--sensitive-arg ${unknownSensitive.join(", ")}: no such module argument (the arguments are ${Object.keys(args).join(", ") || "none"})`);
  }
  const redact = redactor(Object.fromEntries(request.sensitiveArgs.map((name) => [`nixosArgs.${name}`, args[name]])));
  // dry-activate uploads no key: check the specs, read no secret and run no key command
  const specs = [...flags.key.map(parseKeyArgument), ...request.keys];
  if (request.request.action === "dry-activate") checkKeySpecs(specs);
  const keys = request.request.action === "dry-activate" ? [] : await loadKeys(specs);
  return {
    request: { ...request.request, source, keys },
    dependencyOptions: {
      moduleArgsJson,
      redact,
      extraArgs: flags.showTrace === true ? ["--show-trace"] : undefined,
    },
    json: flags.json === true,
  };
}

/**
 * The files a source names, checked before anything is built: a configuration that is not there, and a toplevel
 * given as a link to the store (`./result`), which becomes the store path it points to.
 */
async function checkedSource(source: SystemSource): Promise<SystemSource> {
  if (source.kind === "config") {
    const info = await stat(source.configuration).catch(() => undefined);
    if (info === undefined) throw new UsageError(`--config ${source.configuration} does not exist`);
    if (info.isDirectory()) throw new UsageError(`--config ${source.configuration} is a directory; give its configuration.nix`);
    return source;
  }
  if (source.kind !== "toplevel") return source;
  // follow links (./result) to the store path they name, as nix-build's result links do
  let path = resolve(source.path);
  for (let hops = 0; hops < 40 && !path.startsWith("/nix/store/"); hops++) {
    const target = await readlink(path).catch((err: NodeJS.ErrnoException) => (err.code === "EINVAL" ? undefined : null));
    if (target === null) throw new UsageError(`--toplevel ${source.path} does not exist`);
    if (target === undefined) break;
    path = resolve(dirname(path), target);
  }
  const storePath = /^\/nix\/store\/[^/]+/.exec(path)?.[0];
  if (storePath === undefined || storePath !== path.replace(/\/$/, "")) {
    throw new UsageError(`--toplevel '${source.path}' is not a store path (/nix/store/...-nixos-system-...)${path !== source.path ? `: it leads to ${path}` : ""}`);
  }
  return { kind: "toplevel", path: storePath };
}

/**
 * Turns the flags into a deploy request, or explains which flag is wrong: the settings given (each flag through its
 * one parser, SETTING_FLAGS) over the command line's defaults, mapped as push maps a deployment (deployRequestOf).
 */
function deployRequest(flags: DeployFlags, given: (attribute: string) => boolean): MappedDeployment & { readonly source: SystemSource } {
  if (flags.targetHost === undefined) {
    throw new UsageError("--target-host is required (or set CDKTF_NIXOS_TARGET_HOST), e.g. --target-host root@203.0.113.10");
  }
  const target = parseTargetHost(flags.targetHost);
  const knownHosts = knownHostsFileProblem(flags.knownHosts ?? DEFAULT_SETTINGS.knownHostsFile);
  if (knownHosts !== undefined) throw new UsageError(`--known-hosts: ${knownHosts}`);
  const settings = withOverrides(DEFAULT_SETTINGS, { ...settingsGiven(flags as unknown as Record<string, unknown>, given), user: target.user });
  checkCompressMode(settings.compress);
  const badEndpoint = settings.ec2Endpoint === undefined ? undefined : endpointProblem(settings.ec2Endpoint);
  if (badEndpoint !== undefined) throw new UsageError(`--endpoint ${badEndpoint}`);
  // a typo'd region would surface only as "could not reach EC2 (ENOTFOUND)"; Terraform passes "" when it has none
  const badRegion = flags.region === undefined || flags.region === "" ? undefined : regionProblem(flags.region);
  if (badRegion !== undefined) throw new UsageError(`--region ${badRegion}`);
  if (flags.hostKeyFromEc2Console !== undefined && !/^i-[0-9a-f]{8,17}$/.test(flags.hostKeyFromEc2Console)) {
    throw new UsageError(`--host-key-from-ec2-console '${flags.hostKeyFromEc2Console}' is not an instance ID (i-0123456789abcdef0)`);
  }
  const mapped = deployRequestOf(settings, {
    host: target.host,
    instanceId: flags.hostKeyFromEc2Console,
    region: flags.region === "" ? undefined : flags.region,
  });
  return { ...mapped, source: systemSource(flags) };
}

/** `--compress zstd` compresses here: zstd must be on this machine's PATH (the target's is checked on the copy). */
export function checkCompressMode(mode: CompressMode | undefined): void {
  if (mode === "zstd" && !localZstdAvailable()) {
    throw new UsageError("--compress zstd needs the zstd program on this machine, and it is not on PATH (install zstd, or use --compress auto)");
  }
}

function systemSource(flags: DeployFlags): SystemSource {
  const given = [
    flags.toplevel !== undefined && "--toplevel",
    flags.config !== undefined && "--config",
    flags.flake !== undefined && "--flake",
  ].filter((f): f is string => f !== false);
  if (given.length !== 1) {
    throw new UsageError(
      given.length === 0
        ? "say what to deploy: --toplevel STORE_PATH, --config configuration.nix [-I nixpkgs=PATH], or --flake REF#NAME"
        : `give only one of --toplevel, --config and --flake (got ${given.join(" and ")})`,
    );
  }
  if (flags.include.length > 0 && flags.config === undefined) {
    throw new UsageError("-I only applies to --config; a flake pins its inputs in flake.lock");
  }
  for (const entry of flags.include) {
    if (!/^[^=]+=.+$/.test(entry)) throw new UsageError(`-I '${entry}' is not name=path (e.g. -I nixpkgs=/path/to/nixpkgs)`);
  }
  if (flags.toplevel !== undefined) return { kind: "toplevel", path: flags.toplevel };
  if (flags.flake !== undefined) {
    if (parseFlakeRef(flags.flake) === undefined) {
      throw new UsageError(`--flake '${flags.flake}' is not REF#NAME (e.g. --flake .#web)`);
    }
    return { kind: "flake", ref: flags.flake };
  }
  return { kind: "config", configuration: flags.config as string, includes: flags.include };
}

/** Module arguments from --nixos-args-file or CDKTF_NIXOS_ARGS_JSON (how Terraform passes apply-time values). */
export async function moduleArgs(flags: { readonly nixosArgsFile?: string }): Promise<string | undefined> {
  const text = flags.nixosArgsFile !== undefined
    ? await readFile(flags.nixosArgsFile, "utf8").catch((err: Error) => {
      throw new UsageError(`cannot read --nixos-args-file: ${err.message}`);
    })
    : process.env[DEPLOY_ENV.moduleArgsJson];
  // read once, then out of the environment: no child process (Nix, ssh-agent, key commands) inherits the values
  delete process.env[DEPLOY_ENV.moduleArgsJson];
  if (text === undefined || text.trim() === "") return undefined;
  const source = flags.nixosArgsFile !== undefined ? `--nixos-args-file ${flags.nixosArgsFile}` : `$${DEPLOY_ENV.moduleArgsJson}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`the module arguments in ${source} are not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`the module arguments in ${source} must be a JSON object, e.g. {"peers": ["10.0.0.5"]}`);
  }
  const deep = tooDeep(parsed);
  if (deep !== undefined) throw new UsageError(`the module arguments in ${source}: ${deep}`);
  const reserved = reservedModuleArgsProblem(Object.keys(parsed));
  if (reserved !== undefined) throw new UsageError(reserved);
  return JSON.stringify(parsed);
}
