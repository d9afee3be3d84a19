import { UserInputError } from "../errors";

/** How NARs are compressed in a cache this tool writes (the cache URL's `compression`, as Nix names it). */
export type Compression = "zstd" | "xz";

export const COMPRESSIONS: readonly Compression[] = ["zstd", "xz"];

/**
 * A binary cache URL as Nix writes it: `s3://BUCKET?region=…&endpoint=…&scheme=…&profile=…&compression=…` or
 * `file:///DIR?compression=…` (where this tool uploads), `http(s)://…` (a cache this tool only reads; its uploads go
 * through the user's push command).
 */
export type CacheLocation =
  | {
    readonly kind: "s3";
    readonly url: string;
    readonly bucket: string;
    readonly region: string | undefined;
    /** `endpoint` with its scheme; given, addressing is path-style (as Nix does). */
    readonly endpoint: string | undefined;
    readonly profile: string | undefined;
    readonly compression: Compression;
  }
  | { readonly kind: "file"; readonly url: string; readonly directory: string; readonly compression: Compression }
  | { readonly kind: "http"; readonly url: string };

export class CacheUrlError extends UserInputError {}

const S3_PARAMETERS = ["region", "endpoint", "scheme", "profile", "compression", "priority"];
const FILE_PARAMETERS = ["compression", "priority"];

export function parseCacheUrl(text: string, flag = "--cache"): CacheLocation {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CacheUrlError(`${flag} '${text}' is not a URL: give s3://BUCKET?region=REGION, file:///DIR or http(s)://HOST/…`);
  }
  const parameters = url.searchParams;
  const compression = (): Compression => {
    const given = parameters.get("compression") ?? "zstd";
    if (!(COMPRESSIONS as readonly string[]).includes(given)) {
      throw new CacheUrlError(`${flag} '${text}': compression '${given}' is not one this tool writes (${COMPRESSIONS.join(", ")})`);
    }
    return given as Compression;
  };
  const onlyKnown = (known: readonly string[]) => {
    if (parameters.has("secret-key")) {
      throw new CacheUrlError(`${flag} '${text}': the signing key is not part of the URL here: give it as --cache-signing-key FILE (cacheSigningKeyFile)`);
    }
    const unknown = [...parameters.keys()].filter((name) => !known.includes(name));
    if (unknown.length > 0) throw new CacheUrlError(`${flag} '${text}': unknown parameter ${unknown.join(", ")} (known: ${known.join(", ")})`);
  };
  switch (url.protocol) {
    case "s3:": {
      onlyKnown(S3_PARAMETERS);
      if (url.hostname === "") throw new CacheUrlError(`${flag} '${text}' names no bucket: s3://BUCKET?region=REGION`);
      const endpoint = parameters.get("endpoint") ?? undefined;
      const scheme = parameters.get("scheme") ?? "https";
      return {
        kind: "s3",
        url: text,
        bucket: url.hostname,
        region: parameters.get("region") ?? undefined,
        endpoint: endpoint === undefined ? undefined : /^[a-z]+:\/\//.test(endpoint) ? endpoint : `${scheme}://${endpoint}`,
        profile: parameters.get("profile") ?? undefined,
        compression: compression(),
      };
    }
    case "file:": {
      onlyKnown(FILE_PARAMETERS);
      if (url.host !== "") throw new CacheUrlError(`${flag} '${text}': a file cache is file:///ABSOLUTE/DIR (three slashes)`);
      return { kind: "file", url: text, directory: decodeURIComponent(url.pathname), compression: compression() };
    }
    case "http:":
    case "https:":
      return { kind: "http", url: text };
    default:
      throw new CacheUrlError(`${flag} '${text}': ${url.protocol}// caches are not supported: give s3://, file:// or http(s)://`);
  }
}

/** `NAME:BASE64` of a 32-byte ed25519 key, as trusted-public-keys lists it: its name and key bytes. */
export function parsePublicKeyText(text: string): { readonly name: string; readonly bytes: Buffer } {
  const match = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(text.trim());
  const bytes = match ? Buffer.from(match[2]!, "base64") : Buffer.alloc(0);
  if (!match || bytes.length !== 32) {
    throw new CacheUrlError(`'${text}' is not a Nix binary cache public key (NAME:BASE64 of 32 bytes, e.g. cache-1:AbC…=)`);
  }
  return { name: match[1]!, bytes };
}
