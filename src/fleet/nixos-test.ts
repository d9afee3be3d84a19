import { UserInputError } from "../errors";
import { dirname, relative } from "node:path";
import { nixAttrName, nixString, nixValue, parseFlakeRef } from "../nix/system";
import { isExpression } from "./inventory";
import type { Redact } from "../redact";
import { WRITTEN_TEST_MARK } from "./written-test-file";
import { LocalArgsError, localRedactor, resolveLocalArgs, unknownOverrides, type LocalArgs, type LocalHost } from "./local-args";

/**
 * A NixOS integration test of a stack's hosts (`pkgs.testers.runNixOSTest`): one node per selected host, built from
 * the host's own configuration and module arguments. Pure: the plan of the test and the Nix expression of it.
 */
export class NixosTestError extends UserInputError {}

/** The attributes of an aws_instance that hold one of its addresses. */
const INSTANCE_ADDRESS_ATTRIBUTES = ["private_ip", "public_ip", "private_dns", "public_dns"] as const;

/**
 * A host's node name: its name where that is a Python identifier (the test script's variable, and the node's
 * default host name), else with every other character made `_` (`db/replica` → `db_replica`).
 */
export function nodeNameOf(hostName: string): string {
  const name = hostName.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** The single `${…}` of a string that is exactly one Terraform interpolation, else undefined. */
function soleInterpolation(value: string): string | undefined {
  const match = /^\$\{([^{}]+)\}$/.exec(value);
  return match?.[1].trim();
}

/**
 * The Terraform expressions that stand for a host's address: its `host` (an instance's IP, an Elastic IP, …) and,
 * for an EC2 instance, the instance's private and public IPs and DNS names.
 */
export function addressExpressions(host: LocalHost): string[] {
  const found = new Set<string>();
  const target = soleInterpolation(host.spec.host);
  if (target !== undefined) found.add(target);
  const instance = host.spec.instanceId === undefined ? undefined : soleInterpolation(host.spec.instanceId);
  const resource = instance === undefined ? undefined : /^(aws_instance\.[A-Za-z0-9_-]+)\.id$/.exec(instance)?.[1];
  if (resource !== undefined) for (const attribute of INSTANCE_ADDRESS_ATTRIBUTES) found.add(`${resource}.${attribute}`);
  return [...found];
}

/**
 * Replaces, in strings anywhere inside a value, every `${…}` that is a node's address by the node's name: in the
 * test `web` reaches `db` by name on the test network, as it reaches db's address in AWS.
 */
export function addressReplacer(nodes: ReadonlyArray<{ readonly nodeName: string; readonly host: LocalHost }>): (value: unknown) => unknown {
  const byExpression = new Map<string, string>();
  for (const node of nodes) for (const expression of addressExpressions(node.host)) byExpression.set(expression, node.nodeName);
  const replace = (value: unknown): unknown => {
    if (typeof value === "string") {
      return isExpression(value) ? value.replace(/\$\{([^{}]+)\}/g, (whole, inner: string) => byExpression.get(inner.trim()) ?? whole) : value;
    }
    if (Array.isArray(value)) return value.map(replace);
    if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replace(v)]));
    return value;
  };
  return replace;
}

export interface TestNode {
  /** The node's name in the test: the script's variable and the node's default host name. */
  readonly name: string;
  /** The stack's host it is built from. */
  readonly hostName: string;
  /** Absolute path of the host's configuration.nix; or, for a flake host, the configuration's name in the flake. */
  readonly configuration?: string;
  readonly flakeConfiguration?: string;
  readonly moduleArgs: { readonly [name: string]: unknown };
}

export interface NixosTest {
  readonly stack: string;
  readonly nodes: readonly TestNode[];
  /** Absolute path of the Python test script. */
  readonly testScript: string;
  /** The configuration hosts' NIX_PATH, one for the whole test (`nixpkgs` included); empty with only flake hosts. */
  readonly nixPath: { readonly [name: string]: string };
  /** The flake of the flake hosts (`path:/abs/dir`), one for the whole test. */
  readonly flake?: string;
}

/**
 * The nodes of a test of these hosts, checked: the configuration hosts with one NIX_PATH and the flake hosts from one
 * flake (one nixpkgs and one node.specialArgs run the test), node names distinct.
 */
export function planNixosTestNodes(hosts: readonly LocalHost[]): { nodes: { nodeName: string; host: LocalHost }[]; nixPath: Record<string, string>; flake?: string } {
  const fromFiles = hosts.filter((h) => h.spec.source.configuration !== undefined);
  const nixPaths = new Map(fromFiles.map((h) => [h.name, JSON.stringify(Object.entries(h.spec.source.nixPath ?? {}).sort())]));
  if (new Set(nixPaths.values()).size > 1) {
    throw new NixosTestError(`the hosts use different nixPath (${fromFiles.map((h) => `${h.name}: ${nixPaths.get(h.name)}`).join("; ")}); ` +
      "one test runs on one nixpkgs: select hosts that share it with --on");
  }
  const flakes = new Map(hosts.flatMap((h) => (h.spec.source.flake === undefined ? [] : [[h.name, parseFlakeRef(h.spec.source.flake)!.ref] as const])));
  if (new Set(flakes.values()).size > 1) {
    throw new NixosTestError(`the hosts come from different flakes (${[...flakes].map(([name, ref]) => `${name}: ${ref}`).join("; ")}); ` +
      "one test takes its node.specialArgs from one flake: select hosts of one flake with --on");
  }
  const nodes = hosts.map((host) => ({ nodeName: nodeNameOf(host.name), host }));
  const seen = new Map<string, string>();
  for (const node of nodes) {
    const other = seen.get(node.nodeName);
    if (other !== undefined) throw new NixosTestError(`hosts ${other} and ${node.host.name} would both be test node ${node.nodeName}; leave one out with --on`);
    seen.set(node.nodeName, node.host.name);
  }
  return { nodes, nixPath: { ...(fromFiles[0]?.spec.source.nixPath ?? {}) }, flake: [...flakes.values()][0] };
}

/**
 * A path as Nix code: for a file meant for the repository, relative to it when both are inside the project
 * (`./tests/fleet.py`, `../nixos/web.nix`); otherwise absolute.
 */
function nixPath(path: string, file?: { readonly dir: string; readonly projectDir: string }): string {
  const inProject = file !== undefined && !relative(file.projectDir, path).startsWith("..") && !relative(file.projectDir, file.dir).startsWith("..");
  const text = inProject ? relative(file.dir, path) : path;
  const literal = !inProject || text.startsWith("../") ? text : `./${text}`;
  return /^(\.{1,2})?\/[A-Za-z0-9._+\-/]*$/.test(literal) ? literal : `(/. + ${nixString(path)})`;
}

/** The `nix-build` command line of the written test, for its header. */
export function nixosTestBuildCommand(test: NixosTest, file: string, attribute: "driver" | "driverInteractive"): string {
  return ["nix-build", ...(test.flake === undefined ? [] : ["--extra-experimental-features", "'nix-command flakes'"]), file, "-A", attribute,
    ...Object.entries(test.nixPath).flatMap(([k, v]) => ["-I", `${k}=${v}`])].join(" ");
}

/**
 * The test as a Nix file: a function of nixpkgs (default `<nixpkgs>`) returning `pkgs.testers.runNixOSTest`, whose
 * nodes import the hosts' configurations with their module arguments. When it is written to a file (`written.path`,
 * absolute; `written.shownAs`, as the user named it) the paths inside the project are relative to that file, so it
 * can live in the repository beside the configurations.
 */
export function nixosTestExpression(test: NixosTest, written?: { readonly path: string; readonly shownAs: string; readonly projectDir: string }): string {
  const base = written === undefined ? undefined : { dir: dirname(written.path), projectDir: written.projectDir };
  const flakeNodes = test.nodes.filter((n) => n.flakeConfiguration !== undefined);
  const nodes = test.nodes.map((node) => {
    const args = Object.keys(node.moduleArgs).length === 0 ? "" : `\n      _module.args = ${nixValue(node.moduleArgs, "      ")};`;
    // a flake host: the modules its nixosSystem was given (nixpkgs keeps them in _module.args.modules)
    const imports = node.flakeConfiguration !== undefined
      ? `flake.nixosConfigurations.${nixAttrName(node.flakeConfiguration)}._module.args.modules`
      : `[ ${nixPath(node.configuration!, base)} ]`;
    return `    # host ${node.hostName}\n    ${nixAttrName(node.name)} = {\n      imports = ${imports};${args}\n    };`;
  });
  const header = written === undefined ? [] : [
    `# NixOS integration test of stack ${test.stack}: ${test.nodes.map((n) => n.name).join(", ")}.`,
    `${WRITTEN_TEST_MARK}: the hosts' configurations and module arguments, other hosts' addresses`,
    "# replaced by their node names. Write it again after changing the stack rather than editing it.",
    `#   run:         ${nixosTestBuildCommand(test, written.shownAs, "driver")} && ./result/bin/nixos-test-driver`,
    `#   interactive: ${nixosTestBuildCommand(test, written.shownAs, "driverInteractive")} && ./result/bin/nixos-test-driver`,
  ];
  const flake = test.flake === undefined ? undefined : flakeReference(test.flake, base);
  // with only flake hosts the test runs on the flake's own nixpkgs
  const nixpkgs = test.nodes.length === flakeNodes.length && flake !== undefined ? `(builtins.getFlake ${flake}).inputs.nixpkgs` : "<nixpkgs>";
  return [
    ...header,
    `{ nixpkgs ? ${nixpkgs}, pkgs ? import nixpkgs { } }:`,
    ...(flake === undefined ? [] : [`let flake = builtins.getFlake ${flake}; in`]),
    "pkgs.testers.runNixOSTest {",
    `  name = ${nixString(test.stack)};`,
    ...(flakeNodes.length === 0 ? [] : [
      "  # what the flake's nixosSystem gave its modules for imports (one set for every node)",
      `  node.specialArgs = builtins.removeAttrs flake.nixosConfigurations.${nixAttrName(flakeNodes[0].flakeConfiguration!)}._module.specialArgs [ "modulesPath" ];`,
    ]),
    "  nodes = {",
    ...nodes,
    "  };",
    `  testScript = builtins.readFile ${nixPath(test.testScript, base)};`,
    "}",
    "",
  ].join("\n");
}

/** A flake for builtins.getFlake: a `path:` flake inside the project, relative to the written file; else as given. */
function flakeReference(ref: string, file?: { readonly dir: string; readonly projectDir: string }): string {
  const dir = ref.startsWith("path:") ? ref.slice("path:".length) : undefined;
  if (dir !== undefined && file !== undefined && !relative(file.projectDir, dir).startsWith("..") && !relative(file.projectDir, file.dir).startsWith("..")) {
    return `(toString ${nixPath(dir, file)})`;
  }
  return nixString(ref);
}

export interface NixosTestPlan {
  readonly test: NixosTest;
  /** Per node, where each module argument came from. */
  readonly origins: { readonly [node: string]: LocalArgs["origins"] };
  readonly redact: Redact;
}

export interface NixosTestOptions {
  readonly stack: string;
  /** Absolute path of the Python test script. */
  readonly testScript: string;
  readonly stateProblem?: string;
  /** The expression goes into a file (`--write`): sensitive values must come from `--arg`, never from the state. */
  readonly forFile: boolean;
}

/** The test of the selected hosts: nodes, module arguments (addresses replaced by node names), one nixpkgs. */
export function planNixosTest(hosts: readonly LocalHost[], overrides: Readonly<Record<string, unknown>>, options: NixosTestOptions): NixosTestPlan {
  const unknown = unknownOverrides(hosts, overrides);
  if (unknown !== undefined) throw new LocalArgsError(unknown);
  const { nodes, nixPath, flake } = planNixosTestNodes(hosts);
  const replaceAddresses = addressReplacer(nodes);
  const resolved = nodes.map((node) => ({ node, host: node.host, args: resolveLocalArgs(node.host, overrides, { replaceAddresses, stateProblem: options.stateProblem }) }));
  if (options.forFile) {
    const fromState = resolved.flatMap(({ host, args }) =>
      host.spec.sensitiveArgs.filter((name) => args.origins[name] !== "--arg" && name in args.args).map((name) => `${host.name}: ${name}`));
    if (fromState.length > 0) {
      throw new LocalArgsError(`sensitive module arguments (${fromState.join(", ")}) would be written into the file; ` +
        `give test values for them with ${[...new Set(fromState.map((f) => `--arg ${f.split(": ")[1]}=VALUE`))].join(" ")}`);
    }
  }
  return {
    test: {
      stack: options.stack,
      testScript: options.testScript,
      nixPath,
      flake,
      nodes: resolved.map(({ node, args }) => ({
        name: node.nodeName,
        hostName: node.host.name,
        configuration: node.host.spec.source.configuration,
        flakeConfiguration: node.host.spec.source.flake === undefined ? undefined : parseFlakeRef(node.host.spec.source.flake)!.name,
        moduleArgs: args.args,
      })),
    },
    origins: Object.fromEntries(resolved.map(({ node, args }) => [node.nodeName, args.origins])),
    redact: localRedactor(resolved),
  };
}
