import { UserInputError } from "../errors";
import { lstat, open, rename, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** The line a file written by `test --write` carries near its top: what lets a later `--write` replace it. */
export const WRITTEN_TEST_MARK = "# Written by `cdktf-nixos test --write`";
/** How much of an existing file is read to find the mark: it is in the header. */
const HEADER_BYTES = 4096;

/** `test --write FILE` would replace or write where it must not; found before anything is synthesized or built. */
export class WrittenTestFileError extends UserInputError {}

/**
 * Checks that `test --write` may write `path` (absolute; `shown` as the user gave it): its directory exists, and the
 * file is new, or a regular file an earlier `test --write` wrote, or any regular file with `force`. Never the test
 * script itself, a directory or a symbolic link.
 */
export async function checkWrittenTestFile(path: string, shown: string, options: { readonly force: boolean; readonly testScript: string }): Promise<void> {
  const refuse = (why: string) => new WrittenTestFileError(`--write ${shown}: ${why}`);
  if (path === options.testScript) throw refuse("that is the test script itself (the written test reads it): write the test to another file, e.g. tests/fleet.nix");
  try {
    if (!(await lstat(dirname(path))).isDirectory()) throw refuse(`${dirname(path)} is not a directory`);
  } catch (err) {
    if (err instanceof WrittenTestFileError) throw err;
    throw refuse(`the directory ${dirname(path)} does not exist: create it first (mkdir -p ${dirname(path)})`);
  }
  let stat;
  try {
    stat = await lstat(path);
  } catch {
    return;
  }
  if (stat.isSymbolicLink()) throw refuse(`${path} is a symbolic link: give the file it points to, or another path`);
  if (!stat.isFile()) throw refuse(`${path} exists and is not a file`);
  if (options.force) return;
  const file = await open(path, "r");
  let head: string;
  try {
    const buffer = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await file.read(buffer, 0, HEADER_BYTES, 0);
    head = buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await file.close();
  }
  if (!head.split("\n").some((line) => line.startsWith(WRITTEN_TEST_MARK))) {
    throw refuse(`${path} exists and was not written by \`cdktf-nixos test --write\` (no such header): choose another file, or pass --force to replace it`);
  }
}

/**
 * Writes the test file whole or not at all: into a temporary file beside it, renamed over it (a crash leaves the old
 * file, never half of the new one).
 */
export async function writeTestFile(path: string, content: string): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(temporary, content, { flag: "wx", mode: 0o644 });
    await rename(temporary, path);
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw err;
  }
}
