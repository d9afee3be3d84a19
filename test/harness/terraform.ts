import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./target-hosts";

const MIRROR = "/opt/tf-plugins";
const STATE = join(tmpdir(), "cdktf-nixos-terraform");

/** Terraform pointed at the offline provider mirror, with a shared plugin cache so each init is cheap. */
export async function terraformEnv(): Promise<Record<string, string>> {
  const cliConfig = join(STATE, "terraformrc");
  await mkdir(join(STATE, "plugin-cache"), { recursive: true });
  await writeFile(cliConfig, `plugin_cache_dir = "${join(STATE, "plugin-cache")}"
provider_installation {
  filesystem_mirror {
    path    = "${MIRROR}"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
`);
  return { TF_CLI_CONFIG_FILE: cliConfig, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1" };
}

/** Runs terraform in a synthesized stack directory; throws with its output when it fails. */
export async function terraform(stackDir: string, args: string[], env: Record<string, string> = {}) {
  const result = await run("terraform", args, { cwd: stackDir, env: { ...process.env, ...(await terraformEnv()), ...env } as Record<string, string>, check: false });
  if (result.exitCode !== 0) {
    throw new Error(`terraform ${args.join(" ")} in ${stackDir} failed (exit ${result.exitCode}):\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

/** Points the stack's aws provider at an EC2 endpoint with fake credentials (a Terraform override file). */
export async function useEc2Endpoint(stackDir: string, endpoint: string): Promise<void> {
  await writeFile(join(stackDir, "zz_endpoint_override.tf.json"), JSON.stringify({
    provider: {
      aws: {
        access_key: "test",
        secret_key: "test",
        skip_credentials_validation: true,
        skip_requesting_account_id: true,
        skip_metadata_api_check: true,
        skip_region_validation: true,
        endpoints: [{ ec2: endpoint, sts: endpoint }],
      },
    },
  }, null, 2));
}

/**
 * Requires another version of a provider than the synthesized stack does (a Terraform override file): cdktn's AWS
 * bindings target hashicorp/aws 6.x, this machine's offline mirror has 5.100.0 only.
 */
export async function pinProviderVersion(stackDir: string, provider: string, version: string): Promise<void> {
  await writeFile(join(stackDir, "zz_provider_version_override.tf.json"), JSON.stringify({
    terraform: { required_providers: { [provider]: { source: `hashicorp/${provider}`, version } } },
  }, null, 2));
}
