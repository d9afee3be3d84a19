import type { IConstruct } from "constructs";
import { UserInputError } from "../errors";

/**
 * A construct's props that cannot be synthesized (aws-cdk's `ValidationError(message, scope)`): the message names the
 * construct by its path and kind — `fleet/web (NixosInstance): instanceType "t3micro" is not …` — so one of thirty
 * instances is found. Before a construct exists (a static factory), `at` names it as the factory does, e.g.
 * `fleet/ops (NixosKeyPair.generate)`.
 */
export class ValidationError extends UserInputError {
  constructor(message: string, at: IConstruct | string) {
    super(`${typeof at === "string" ? at : `${at.node.path} (${at.constructor.name})`}: ${message}`);
  }
}
