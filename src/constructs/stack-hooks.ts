import { join } from "node:path";
import type { ISynthesisSession, TerraformStack } from "./core";

/**
 * The one place cdktf-nixos reaches into the CDK core's internals (members cdktf 0.21 and cdktn 0.24 both have).
 * cdktf has no public hook for "before tokens resolve" or "next to the stack's cdk.tf.json", and a deployment needs
 * both: its Nix evaluation must run before cdktf resolves the derivation token (an error thrown while resolving comes
 * wrapped in "Resolution error" and a long stack), and its manifest belongs beside the stack it deploys.
 */
export interface StackHooks {
  /** Before cdktf prepares the stack, that is before any token of it is resolved. */
  beforePrepare(): void;
  /** After cdktf wrote the stack: its name and directory in the output (cdktf.out/stacks/<name>). */
  afterSynthesize(stackName: string, stackDir: string): void;
}

/**
 * Wraps `stack.prepareStack` and `stack.synthesizer` (both public members of TerraformStack, replaced, not patched
 * in their code) so that `hooks` run around cdktf's own steps. Call it once per stack.
 */
export function hookStack(stack: TerraformStack, hooks: StackHooks): void {
  const prepareStack = stack.prepareStack.bind(stack);
  stack.prepareStack = () => {
    hooks.beforePrepare();
    prepareStack();
  };
  const synthesizer = stack.synthesizer;
  stack.synthesizer = {
    synthesize: (session: ISynthesisSession) => {
      synthesizer.synthesize(session);
      const manifest = session.manifest.forStack(stack);
      hooks.afterSynthesize(manifest.name, join(session.outdir, manifest.workingDirectory));
    },
  };
}
