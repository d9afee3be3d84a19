import { Token } from "./core";

/** Apply-time values become stable placeholder strings for the synth-time evaluation. */
export function withPlaceholders(args: { [name: string]: unknown }): Record<string, unknown> {
  const replace = (value: unknown, path: string): unknown => {
    if (typeof value === "string") return Token.isUnresolved(value) ? `@cdktf-nixos:${path}@` : value;
    if (Array.isArray(value)) {
      return Token.isUnresolved(value) ? [`@cdktf-nixos:${path}@`] : value.map((v, i) => replace(v, `${path}.${i}`));
    }
    if (typeof value === "number" && Token.isUnresolved(value)) return `@cdktf-nixos:${path}@`;
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replace(v, `${path}.${k}`)]));
    }
    return value;
  };
  return Object.fromEntries(Object.entries(args).map(([k, v]) => [k, replace(v, k)]));
}
