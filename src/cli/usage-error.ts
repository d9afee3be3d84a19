import { UserInputError } from "../errors";

/** A command line that cannot be acted on; the CLI prints the message and exits 2 without touching any host. */
export class UsageError extends UserInputError {}
