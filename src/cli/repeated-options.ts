import type { Command, Option } from "commander";
import { collect } from "./interruptible";
import { UsageError } from "./usage-error";

/**
 * Refuses a single-valued option given twice (`--parallel 4 … --parallel 8`) and an option given with its negation
 * (`--synth --no-synth`): commander keeps the last silently, and the user meant one of them. Repeatable options
 * (collected into a list) may come any number of times. `args` are the command's own arguments, before any `--`.
 */
export function refuseRepeatedOptions(command: Command, args: readonly string[]): void {
  const own = args.indexOf("--") < 0 ? args : args.slice(0, args.indexOf("--"));
  const given = (option: Option) => own.filter((arg) => arg === option.long || (option.short !== undefined && arg === option.short) ||
    (option.long !== undefined && arg.startsWith(`${option.long}=`)));
  const byName = new Map<string, Option[]>();
  for (const option of command.options as readonly Option[]) {
    if ((option as Option & { parseArg?: unknown }).parseArg === collect) continue;
    const name = option.attributeName();
    byName.set(name, [...(byName.get(name) ?? []), option]);
  }
  for (const options of byName.values()) {
    const uses = options.filter((option) => given(option).length > 0);
    if (uses.length > 1) throw new UsageError(`${uses.map((o) => o.long).join(" and ")} are given together: choose one`);
    if (uses.length === 1 && given(uses[0]).length > 1) {
      throw new UsageError(`${uses[0].long} is given ${given(uses[0]).length} times: give it once (only repeatable options may come more than once)`);
    }
  }
}
