import { UserInputError } from "../errors";
import { parseCacheUrl, parsePublicKeyText } from "./cache-url";
import type { ResolvedDeploymentSettings } from "./settings";

/**
 * A deployment's binary cache, checked as a whole: where the closure is uploaded (by this tool, or by the user's push
 * command), where hosts fetch it from and the key they check it with.
 */
export interface CacheSpec {
  /** Where paths are uploaded: `s3://…` or `file://…` by this tool, anything by the push command. */
  readonly url: string;
  /** What hosts fetch from (`extra-substituters`). */
  readonly substituter: string;
  /** Signs what this tool uploads; the hosts' trusted key is derived from it unless publicKey is given. */
  readonly signingKeyFile: string | undefined;
  /** The key hosts trust for the cache (`extra-trusted-public-keys`). */
  readonly publicKey: string | undefined;
  /** Uploads instead of this tool (`sh -c 'CMD "$@"' sh PATH…`): Cachix, Attic, `nix copy --to`. */
  readonly pushCommand: string | undefined;
}

export class CacheSettingsError extends UserInputError {}

type CacheSettings = Pick<ResolvedDeploymentSettings, "cache" | "cacheSubstituter" | "cacheSigningKeyFile" | "cachePublicKey" | "cachePushCommand">;

/** The settings' cache, or undefined without `cache`; every combination that cannot work is refused here. */
export function cacheSpecOf(settings: CacheSettings): CacheSpec | undefined {
  if (settings.cache === undefined) {
    const stray = ([
      ["cacheSubstituter", "--cache-substituter"],
      ["cacheSigningKeyFile", "--cache-signing-key"],
      ["cachePublicKey", "--cache-public-key"],
      ["cachePushCommand", "--cache-push-command"],
    ] as const).filter(([name]) => settings[name] !== undefined);
    if (stray.length > 0) throw new CacheSettingsError(`${stray.map(([, flag]) => flag).join(", ")} without --cache URL: give the cache too, or leave ${stray.length > 1 ? "them" : "it"} out`);
    return undefined;
  }
  const location = parseCacheUrl(settings.cache);
  if (settings.cacheSubstituter !== undefined) parseCacheUrl(settings.cacheSubstituter, "--cache-substituter");
  if (settings.cachePublicKey !== undefined) parsePublicKeyText(settings.cachePublicKey);
  if (settings.cachePushCommand === undefined) {
    if (location.kind === "http") {
      throw new CacheSettingsError(`--cache ${settings.cache}: this tool uploads to s3:// and file:// caches; for an http(s) cache give the ` +
        "command that uploads to it as --cache-push-command (e.g. 'cachix push NAME', 'attic push NAME')");
    }
    if (settings.cacheSigningKeyFile === undefined) {
      throw new CacheSettingsError(`--cache ${settings.cache} needs --cache-signing-key FILE: hosts accept only signed paths ` +
        "(make a key with nix-store --generate-binary-cache-key NAME secret.key public.key)");
    }
  } else if (settings.cachePublicKey === undefined && settings.cacheSigningKeyFile === undefined) {
    throw new CacheSettingsError("--cache-push-command needs --cache-public-key KEY: the key hosts trust for what the command uploads");
  }
  return {
    url: settings.cache,
    substituter: settings.cacheSubstituter ?? settings.cache,
    signingKeyFile: settings.cacheSigningKeyFile,
    publicKey: settings.cachePublicKey,
    pushCommand: settings.cachePushCommand,
  };
}
