import { UserInputError } from "../errors";
import { globRegExp } from "../glob";

/** What selection reads of a host: its name and its tags (a fleet host, or a stack's host for vm/test). */
export interface SelectableHost {
  readonly name: string;
  readonly tags: { readonly [key: string]: string };
}

/**
 * `--on` selectors, colmena's vocabulary: a host name (`web`), a glob over names (`web-*`, `db/?`), or a tag
 * (`@role=web`: that key with that value; `@web`: any tag whose value, or key, is `web`; globs work in tags too).
 */
export class SelectionError extends UserInputError {}

const glob = (pattern: string) => globRegExp(pattern);

function matches(selector: string, host: SelectableHost): boolean {
  if (!selector.startsWith("@")) return glob(selector).test(host.name);
  const tag = selector.slice(1);
  const eq = tag.indexOf("=");
  const tags = Object.entries(host.tags);
  if (eq >= 0) {
    const key = glob(tag.slice(0, eq));
    const value = glob(tag.slice(eq + 1));
    return tags.some(([k, v]) => key.test(k) && value.test(v));
  }
  const word = glob(tag);
  return tags.some(([k, v]) => word.test(v) || word.test(k));
}

/**
 * The hosts any selector matches, in inventory order; all hosts without selectors. A selector that matches nothing is
 * an error listing the hosts and tags there are (a typo must not silently deploy less).
 */
export function selectHosts<T extends SelectableHost>(hosts: readonly T[], selectors: readonly string[]): T[] {
  if (selectors.length === 0) return [...hosts];
  for (const selector of selectors) {
    if (selector === "" || selector === "@") throw new SelectionError(`--on '${selector}' is empty: give a host name, a glob or @tag`);
    if (!hosts.some((host) => matches(selector, host))) {
      const tags = [...new Set(hosts.flatMap((h) => Object.entries(h.tags).map(([k, v]) => `@${k}=${v}`)))].sort();
      throw new SelectionError(`--on '${selector}' matches no host. Hosts: ${hosts.map((h) => h.name).join(", ") || "none"}` +
        (tags.length > 0 ? `; tags: ${tags.join(", ")}` : "") +
        (/[[\]{}]/.test(selector) ? ". A glob takes * and ? only (no [...] or {...}): give one --on per pattern" : "") +
        (selector.includes(",") ? ". One host, glob or tag per --on: repeat --on for several" : ""));
    }
  }
  return hosts.filter((host) => selectors.some((selector) => matches(selector, host)));
}
