/**
 * The one glob of the project: `*` any run of characters, `?` one character, everything else literal — what
 * OpenSSH's known_hosts patterns and colmena's `--on` accept, and no more (a library's brace or class syntax would
 * silently widen both). A leaf module.
 */
export function globRegExp(pattern: string, options: { readonly ignoreCase?: boolean } = {}): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`, options.ignoreCase === true ? "i" : "");
}
