import { Command } from "commander";
import { readdir } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { parseArgAssignments } from "../../fleet/local-args";
import { loadLocalHosts } from "../../fleet/local-run";
import { findHost, inspectVmDisk, planVm, removeVmDisk, vmDiskImage } from "../../fleet/vm";
import { buildExpression } from "../../nix/build";
import { ForegroundExit, runForeground } from "../foreground";
import { collect } from "../interruptible";
import type { Output } from "../progress";
import { UsageError } from "../usage-error";
import { addProjectOptions, nixTraceArgs, splitAtDashes, synthModeOf, type ProjectFlags } from "./project-options";

interface VmFlags extends ProjectFlags {
  arg: string[];
  buildOnly?: boolean;
  console?: boolean;
  fresh?: boolean;
}

export function registerVmCommand(program: Command, output: Output): void {
  const definition = program.command("vm")
    .description("build one host of the stack as a local QEMU VM (its configuration and module arguments, as deployed) and run it")
    .usage("[options] [stack] <host> [-- qemu-args...]")
    // optional for commander, so that a missing host gets our message rather than commander's internal name for it
    .argument("[stack-and-host...]", "[stack] host: the stack may be left out when one stack has NixOS deployments")
    .option("--arg <name=value>", "a module argument's value (JSON, or plain text for a string); needed for Terraform values the state does not have; repeatable", collect, [])
    .option("--build-only", "build the VM and print its store path; do not run it")
    .option("--console", "the VM's serial console in this terminal: QEMU_KERNEL_PARAMS=console=ttyS0 and -nographic")
    .option("--fresh", "remove the VM's disk image (<host>.qcow2 in this directory) first, so it boots from a clean state");
  addProjectOptions(definition)
    .action(async (operands: string[], flags: VmFlags, command: Command) => {
      // operands after `--` are QEMU's, as with the VM script itself
      const { names, after: qemuArgs } = splitAtDashes(command, operands);
      if (names.length === 0 || names.length > 2) {
        throw new UsageError(names.length === 0
          ? "vm needs the host to run: cdktf-nixos vm [stack] <host> (e.g. cdktf-nixos vm web)"
          : `vm takes [stack] <host>, got ${names.map((n) => `'${n}'`).join(" ")} (QEMU's arguments go after --)`);
      }
      const [stack, hostName] = names.length === 2 ? names : [undefined, names[0]];
      if (flags.buildOnly === true && (flags.fresh === true || flags.console === true || qemuArgs.length > 0)) {
        throw new UsageError("--build-only does not run the VM: leave out --fresh, --console and QEMU arguments");
      }
      const synthMode = synthModeOf(flags);
      const overrides = parseArgAssignments(flags.arg);
      const local = await loadLocalHosts(resolve(flags.project), stack, synthMode, (why) => output.stderr.write(`${why}\n`));
      const plan = planVm(findHost(local.hosts, hostName), overrides, local.stateProblem);
      const origins = Object.entries(plan.args.origins).map(([name, origin]) => `${name} from ${origin}`);
      output.stderr.write(`building the VM of ${plan.host}${origins.length > 0 ? ` (module arguments: ${origins.join(", ")})` : ""}\n`);
      const vm = await buildExpression(plan.build, { extraArgs: nixTraceArgs(flags), redact: plan.redact });
      if (flags.buildOnly === true) {
        output.stdout.write(`${vm}\n`);
        return;
      }
      const scripts = (await readdir(join(vm, "bin"))).filter((f) => /^run-.+-vm$/.test(f));
      if (scripts.length !== 1) throw new Error(`${vm}/bin has ${scripts.length} run-*-vm scripts, expected one`);
      const script = join(vm, "bin", scripts[0]);
      const disk = vmDiskImage(script, process.cwd(), process.env);
      const shown = relative(process.cwd(), disk).startsWith("..") ? disk : `./${relative(process.cwd(), disk)}`;
      const existing = await inspectVmDisk(disk, process.env.NIX_DISK_IMAGE !== undefined && process.env.NIX_DISK_IMAGE !== "");
      if (flags.fresh === true && existing !== "missing") {
        await removeVmDisk(disk, existing);
        output.stderr.write(`removed ${shown}: the VM boots from a clean disk\n`);
      } else if (existing !== "missing") {
        output.stderr.write(`the VM reuses its disk ${shown} from an earlier run (state the VM wrote then is still there); --fresh removes it first\n`);
      } else {
        output.stderr.write(`the VM keeps its state in ${shown}, which stays after it stops; --fresh removes it first next time\n`);
      }
      const env = { ...process.env };
      const args = [...qemuArgs];
      if (flags.console === true) {
        env.QEMU_KERNEL_PARAMS = [env.QEMU_KERNEL_PARAMS, "console=ttyS0"].filter(Boolean).join(" ");
        args.push("-nographic");
      }
      output.stderr.write(`running ${script}${args.length > 0 ? ` ${args.join(" ")}` : ""}\n`);
      const code = await runForeground(script, args, env);
      if (code !== 0) throw new ForegroundExit(`the VM of ${plan.host}`, code);
    });
}
