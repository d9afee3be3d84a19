import { UsageError } from "./usage-error";

/** The longest wait a flag may ask for: a week, well below what a Node timer holds (2^31 ms, ~24.8 days). */
export const MAX_FLAG_SECONDS = 7 * 24 * 3600;

/**
 * A flag's number of seconds: written as digits (an empty value is not 0), from `min` (0, or above 0 with
 * `above0`) to a week, whole when `whole`. One message for every such flag of every command.
 */
export function secondsFlag(flag: string, value: string, options: { readonly above0?: boolean; readonly whole?: boolean } = {}): number {
  const seconds = Number(value);
  const written = options.whole === true ? /^\d+$/.test(value.trim()) : /^\d+(\.\d+)?$/.test(value.trim());
  if (!written || seconds > MAX_FLAG_SECONDS || (options.above0 === true && seconds <= 0)) {
    throw new UsageError(`${flag} '${value}' is not a ${options.whole === true ? "whole " : ""}number of seconds ` +
      `${options.above0 === true ? "above 0" : "from 0"} to ${MAX_FLAG_SECONDS} (a week)`);
  }
  return seconds;
}
