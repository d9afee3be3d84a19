import { Command } from "commander";
import { KnownHostsFile } from "../../deploy/ssh/known-hosts";
import type { Output } from "../progress";
import { UsageError } from "../usage-error";

/**
 * Removes the known_hosts entries recorded for an EC2 instance, so that whatever answers at its address next is
 * checked afresh. NixosDeployment runs it when Terraform destroys or replaces the instance.
 */
export function registerForgetHostKeysCommand(program: Command, output: Output): void {
  program
    .command("forget-host-keys")
    .description("remove the known_hosts entries recorded for an EC2 instance (run when the instance is destroyed)")
    .requiredOption("--instance-id <id>", "the instance whose entries go")
    .requiredOption("--known-hosts <file>", "the known_hosts file")
    .action(async (flags: { instanceId: string; knownHosts: string }) => {
      if (!/^i-[0-9a-f]{8,17}$/.test(flags.instanceId)) {
        throw new UsageError(`--instance-id '${flags.instanceId}' is not an instance ID (i-0123456789abcdef0)`);
      }
      const knownHosts = await KnownHostsFile.load(flags.knownHosts);
      const removed = await knownHosts.removeInstance(flags.instanceId);
      output.stderr.write(`removed ${removed} known_hosts ${removed === 1 ? "entry" : "entries"} of ${flags.instanceId} from ${flags.knownHosts}\n`);
    });
}
