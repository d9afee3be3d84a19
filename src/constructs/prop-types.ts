import { ValidationError } from "./validation-error";
import { z } from "zod";
import { MAX_VALUE_DEPTH } from "../nix/system";

/**
 * Run-time checks of construct props. TypeScript checks them at compile time, but plain JavaScript and the jsii
 * languages (Python, Java, Go, C#) reach the constructors unchecked: a string where a list belongs, a typo'd prop
 * name. One message names the construct, the prop and what it got, before anything is created.
 */

const tagValue = z.union([z.string(), z.number(), z.boolean()]);
export const tags = z.record(z.string(), tagValue);
const stringList = z.array(z.string());
/** jsii interfaces: an object with the members the constructs use. */
export const keyPairRef = z.custom<object>((v) => typeof v === "object" && v !== null && typeof (v as { keyName?: unknown }).keyName === "string",
  "an IKeyPair (NixosKeyPair.generate(), .fromPublicKey(), .fromPublicKeyFile() or .fromKeyPairName())");
export const securityGroupRef = z.custom<object>((v) => typeof v === "object" && v !== null && typeof (v as { securityGroupId?: unknown }).securityGroupId === "string",
  "an INixosSecurityGroup (a NixosSecurityGroup, or NixosSecurityGroup.fromSecurityGroupId())");
export const imageRef = z.custom<object>((v) => typeof v === "object" && v !== null && typeof (v as { bind?: unknown }).bind === "function",
  "an INixosImage (NixosImage.latest() or NixosImage.fromAmiId())");

/** NixosKey; the content rules (names, modes, destinations) are the key spec's own checks. */
const nixosKey = z.strictObject({
  name: z.string(),
  file: z.string().optional(),
  command: stringList.optional(),
  destDir: z.string().optional(),
  user: z.string().optional(),
  group: z.string().optional(),
  permissions: z.union([z.string(), z.number()]).optional(),
  uploadAt: z.string().optional(),
  commandTimeoutSeconds: z.number().optional(),
  replaceExisting: z.boolean().optional(),
});

/** What a deployment reads of an INixosBinaryCache (a NixosBinaryCache, or NixosBinaryCache.fromUrl's). */
export const binaryCacheRef = z.looseObject({
  url: z.string(),
  substituter: z.string(),
  publicKey: z.string(),
  signingKeyFile: z.string().optional(),
  pushCommand: z.string().optional(),
  instanceProfileName: z.string().optional(),
});

export const binaryCacheProps = z.strictObject({
  bucketName: z.string(),
  region: z.string(),
  signingKeyFile: z.string().optional(),
  keyName: z.string().optional(),
  expireAfterDays: z.number().optional(),
  substituter: z.string().optional(),
  tags: tags.optional(),
});

/** NixosBinaryCache.fromUrl's url, public key and options: a cache reference whose substituter may be left out. */
export const binaryCacheImport = z.strictObject({ ...binaryCacheRef.shape, substituter: z.string().optional() });

export const deploymentOptionsShape = {
  configuration: z.string().optional(),
  nixPath: z.record(z.string(), z.string()).optional(),
  flake: z.string().optional(),
  nixosArgs: z.record(z.string(), z.unknown()).optional(),
  sensitiveArgs: stringList.optional(),
  keys: z.array(nixosKey).optional(),
  action: z.string().optional(),
  user: z.string().optional(),
  port: z.number().optional(),
  sshPrivateKeyFile: z.string().optional(),
  knownHostsFile: z.string().optional(),
  acceptNewHostKey: z.boolean().optional(),
  useSubstitutes: z.boolean().optional(),
  buildOnTarget: z.boolean().optional(),
  tags: tags.optional(),
  connectTimeoutSeconds: z.number().optional(),
  confirmTimeoutSeconds: z.number().optional(),
  keepGenerations: z.number().optional(),
  acceptFailedUnits: z.boolean().optional(),
  // each check's fields are checked by resolveHealthCheck, with one message naming the field
  healthChecks: z.array(z.record(z.string(), z.unknown())).optional(),
  systemdHealthCheck: z.boolean().optional(),
  compress: z.string().optional(),
  binaryCache: binaryCacheRef.optional(),
  buildHost: z.string().optional(),
};

export const deploymentProps = z.strictObject({
  ...deploymentOptionsShape,
  host: z.string(),
  instanceId: z.string().optional(),
  region: z.string().optional(),
  ec2Endpoint: z.string().optional(),
});

export const instanceProps = z.strictObject({
  binaryCache: binaryCacheRef.optional(),
  iamInstanceProfile: z.string().optional(),
  release: z.string().optional(),
  image: imageRef.optional(),
  instanceType: z.string().optional(),
  rootVolumeSize: z.number().optional(),
  keyPair: keyPairRef.optional(),
  sshAllowedCidrs: stringList.optional(),
  securityGroups: z.array(securityGroupRef).optional(),
  subnetId: z.string().optional(),
  vpcId: z.string().optional(),
  associatePublicIpAddress: z.boolean().optional(),
  userData: z.string().optional(),
  tags: tags.optional(),
  nixos: z.strictObject({ ...deploymentOptionsShape, usePrivateIp: z.boolean().optional() }).optional(),
});

export const securityGroupProps = z.strictObject({
  sshAllowedCidrs: stringList.optional(),
  sshPort: z.number().optional(),
  ingress: z.array(z.strictObject({
    port: z.number(),
    protocol: z.enum(["tcp", "udp"]).optional(),
    cidrs: stringList,
    description: z.string().optional(),
  })).optional(),
  vpcId: z.string().optional(),
  name: z.string().optional(),
  description: z.string().optional(),
  tags: tags.optional(),
});

export const keyPairProps = z.strictObject({
  keyName: z.string().optional(),
  tags: tags.optional(),
});

export const generateKeyPairProps = z.strictObject({
  keyName: z.string().optional(),
  tags: tags.optional(),
  privateKeyFile: z.string().min(1),
});

export const configurationImageProps = z.strictObject({
  configuration: z.string().optional(),
  flake: z.string().optional(),
  nixPath: z.record(z.string(), z.string()).optional(),
  nixosArgs: z.record(z.string(), z.unknown()).optional(),
  architecture: z.enum(["x86_64", "aarch64"]).optional(),
  bucket: z.string(),
  keyPrefix: z.string().optional(),
  region: z.string().optional(),
  s3Endpoint: z.string().optional(),
  importRoleName: z.string().optional(),
  namePrefix: z.string().optional(),
  buildHost: z.string().optional(),
  sshPrivateKeyFile: z.string().optional(),
  knownHostsFile: z.string().optional(),
  tags: z.record(z.string(), z.string()).optional(),
});

export const latestImageProps = z.strictObject({
  release: z.string().optional(),
  architecture: z.enum(["x86_64", "aarch64"]).optional(),
  owner: z.string().optional(),
});

const EXPECTED: Record<string, string> = {
  string: "a string",
  number: "a number",
  boolean: "true or false",
  array: "a list",
  object: "an object",
  record: "a map (an object of names to values)",
};

/** A value as a message shows it: its kind and, for a scalar, itself. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return "a Date";
  switch (typeof value) {
    case "string": return `the string ${JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)}`;
    case "number": return `the number ${String(value)}`;
    case "boolean": return String(value);
    case "function": return "a function";
    case "undefined": return "undefined";
    case "object": return "an object";
    default: return typeof value;
  }
}

function at(value: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((v, key) => (typeof v === "object" && v !== null ? (v as Record<PropertyKey, unknown>)[key] : undefined), value);
}

function propPath(prefix: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>((text, key) => (typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`), prefix);
}

/**
 * Checks `props` against `schema`; throws one Error naming the construct (`where`, e.g. "fleet/web (NixosInstance)"),
 * each offending prop, what it must be and what it got.
 */
export function checkProps(where: string, schema: z.ZodType, props: unknown, prefix = ""): void {
  if (props === undefined) return;
  const result = schema.safeParse(props);
  if (result.success) return;
  const problems = result.error.issues.map((issue) => {
    const name = propPath(prefix, issue.path);
    const got = describeValue(at(props, issue.path));
    switch (issue.code) {
      case "invalid_type":
        return name === "" ? `props must be an object, got ${got}` : `${name} must be ${EXPECTED[issue.expected] ?? issue.expected}, got ${got}`;
      case "unrecognized_keys":
        return `unknown prop${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => propPath(name, [k])).join(", ")} (misspelled?)`;
      case "invalid_value":
        return `${name} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, got ${got}`;
      case "too_small":
        return `${name} must not be empty, got ${got}`;
      case "invalid_union":
        return `${name} must be a string, a number or true/false, got ${got}`;
      default:
        return `${name} must be ${issue.message}, got ${got}`;
    }
  });
  throw new ValidationError(problems.join("; "), where);
}

/**
 * Why a module argument's value cannot reach Nix as written (JSON turns NaN into null and a Date into a string, and
 * drops functions), or undefined. Tokens are strings and numbers, and pass.
 */
export function jsonValueProblem(value: unknown, path: string, depth = 0): string | undefined {
  if (depth > MAX_VALUE_DEPTH) return `${path} is nested more than ${MAX_VALUE_DEPTH} levels deep`;
  if (value === null || value === undefined || typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `${path} is ${String(value)}, which JSON cannot carry (it would become null)`;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const problem = jsonValueProblem(item, `${path}[${i}]`, depth + 1);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  if (typeof value === "object" && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)) {
    for (const [key, item] of Object.entries(value)) {
      const problem = jsonValueProblem(item, `${path}.${key}`, depth + 1);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  // a token object (an IResolvable) resolves to a Terraform expression
  if (typeof value === "object" && typeof (value as { resolve?: unknown }).resolve === "function") return undefined;
  return `${path} is ${describeValue(value)}, which is not a JSON value (give a string, number, true/false, list or map)`;
}
