import { isPort } from "./target";
import { UserInputError } from "../errors";

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
    throw new UserInputError(`${flag} '${value}' is not a ${options.whole === true ? "whole " : ""}number of seconds ` +
      `${options.above0 === true ? "above 0" : "from 0"} to ${MAX_FLAG_SECONDS} (a week)`);
  }
  return seconds;
}

/** `--max-channels N`: a whole number from 1 to 64. */
export function parseMaxChannels(value: string): number {
  if (!(/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= 64)) {
    throw new UserInputError(`--max-channels '${value}' is not a whole number from 1 to 64 (sshd allows 10 sessions per connection by default)`);
  }
  return Number(value);
}

/** `--keep-generations N`: a whole number of at least 1 (the generation just made always stays). */
export function parseKeepGenerations(value: string): number {
  if (!(/^\d+$/.test(value) && Number(value) >= 1)) {
    throw new UserInputError(`--keep-generations '${value}' is not a whole number of at least 1 (the new generation always stays)`);
  }
  return Number(value);
}

/** `--target-port N`. */
export function parsePort(flag: string, value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || !isPort(port)) throw new UserInputError(`${flag} '${value}' is not a port number (1-65535)`);
  return port;
}

/** A flag whose words are one of `choices` (commander checks them too; this holds for values from elsewhere). */
export function parseChoice<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new UserInputError(`${flag} '${value}' is not one of ${choices.join(", ")}`);
  return value as T;
}
