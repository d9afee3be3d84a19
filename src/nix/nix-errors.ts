import { stripVTControlCharacters } from "node:util";

/**
 * Reading Nix's errors, in one place: Nix prints `error: …` lines (coloured when it thinks stderr is a terminal), and
 * for an evaluation error the `at FILE:LINE:COLUMN:` it points at.
 */

/** Text without terminal colours and cursor movement. */
export function stripAnsi(text: string): string {
  return stripVTControlCharacters(text);
}

/** Whether a line of Nix's stderr is one of its errors. */
export function isNixErrorLine(line: string): boolean {
  return stripAnsi(line).trimStart().startsWith("error:");
}

/**
 * The reason of Nix's first (the evaluation's cause) or last (a server's final word) `error:` line, and where the
 * first one points; without an error line, the last line said, for `last`.
 */
export function nixError(stderr: string, which: "first" | "last" = "first"): { readonly reason?: string; readonly location?: string } {
  const lines = stripAnsi(stderr).split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const errors = lines.map((l, i) => [l, i] as const).filter(([l]) => l.startsWith("error:"));
  const chosen = which === "first" ? errors[0] : errors.at(-1);
  if (chosen === undefined) return which === "last" && lines.length > 0 ? { reason: lines.at(-1) } : {};
  const reason = chosen[0].replace(/^error:\s*/, "");
  const at = lines.slice(chosen[1] + 1).map((l) => /^at (\/.+:\d+:\d+):$/.exec(l)).find((m) => m !== null);
  return { reason, location: at?.[1] };
}
