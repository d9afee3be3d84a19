/**
 * Takes values a user marked sensitive out of text before it is shown: Nix prints an offending value in its errors
 * (a type error shows it, twice), and those errors reach the terminal, `--json` and Terraform's log. A leaf module.
 */
export type Redact = (text: string) => string;

export const NO_REDACTION: Redact = (text) => text;

/**
 * A redactor for named values (e.g. `{ dbPassword: "…" }`): every string inside each value, as it stands and as Nix
 * or JSON would quote it, becomes `«sensitive NAME»`. Strings shorter than 4 characters are left alone: replacing
 * every "1" or "on" in a message would garble it and hide nothing worth hiding.
 */
export function redactor(values: Readonly<Record<string, unknown>>): Redact {
  const replacements: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(values)) {
    for (const text of strings(value)) {
      if (text.length < 4) continue;
      const label = `«sensitive ${name}»`;
      for (const form of new Set([text, JSON.stringify(text).slice(1, -1), nixQuoted(text)])) replacements.push([form, label]);
    }
  }
  if (replacements.length === 0) return NO_REDACTION;
  // longest first: a value that contains another is replaced whole
  replacements.sort((a, b) => b[0].length - a[0].length);
  return (text) => replacements.reduce((out, [form, label]) => out.split(form).join(label), text);
}

function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (typeof value === "number" || typeof value === "bigint") return [String(value)];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (typeof value === "object" && value !== null) return Object.values(value).flatMap(strings);
  return [];
}

/** The inside of a Nix string literal as Nix prints it. */
function nixQuoted(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$\{/g, "\\${").replace(/\n/g, "\\n");
}
