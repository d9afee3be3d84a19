import { hostName, recordedInputs } from "./inventory";
import type { LocalHost } from "./local-args";
import { ProjectError, loadStack, readStackState, type LoadedStack, type SynthMode } from "./project";

export interface LocalStack {
  readonly loaded: LoadedStack;
  readonly hosts: readonly LocalHost[];
  /** Why Terraform's values could not be read (then only the stack's values and `--arg` are there). */
  readonly stateProblem?: string;
}

/**
 * A stack's hosts for building on this machine (`vm`, `test`): the synthesized deployments with what Terraform
 * recorded for each. Unlike a push, a stack that was never deployed is fine: its Terraform values come from `--arg`.
 */
export async function loadLocalHosts(
  projectDir: string,
  stack: string | undefined,
  mode: SynthMode,
  onSynthesizing: (why: string) => void,
  notSources: readonly string[] = [],
): Promise<LocalStack> {
  const loaded = await loadStack(projectDir, stack, mode, onSynthesizing, notSources);
  let inputs: ReturnType<typeof recordedInputs> = new Map();
  let stateProblem: string | undefined;
  try {
    inputs = recordedInputs(await readStackState(loaded.stackDir, onSynthesizing));
  } catch (err) {
    if (!(err instanceof ProjectError)) throw err;
    stateProblem = err.message;
  }
  const hosts = loaded.manifest.deployments.map((spec): LocalHost => ({
    name: hostName(loaded.manifest.stack, spec.id),
    spec,
    tags: spec.tags,
    input: inputs.get(spec.resource),
  }));
  return { loaded, hosts, stateProblem };
}
