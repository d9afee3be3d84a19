import { Command } from "commander";
import { resolve } from "node:path";
import { checkOutDir, copyImageTo, parseImageFormat, planImage } from "../../fleet/image";
import { parseArgAssignments } from "../../fleet/local-args";
import { loadLocalHosts } from "../../fleet/local-run";
import { findHost } from "../../fleet/vm";
import { buildExpression } from "../../nix/build";
import { imageFileIn } from "../../nix/image";
import { collect } from "../interruptible";
import { sizeText, type Output } from "../progress";
import { UsageError } from "../usage-error";
import { addProjectOptions, nixTraceArgs, synthModeOf, type ProjectFlags } from "./project-options";

interface ImageFlags extends ProjectFlags {
  arg: string[];
  format?: string;
  out?: string;
}

export function registerImageCommand(program: Command, output: Output): void {
  const definition = program.command("image")
    .description("build one host of the stack as an image file (its configuration and module arguments, as deployed): an AMI's disk, a bootable ISO, a raw disk; never uploads")
    .usage("[options] [stack] <host> --format amazon|iso|raw")
    .argument("[stack-and-host...]", "[stack] host: the stack may be left out when one stack has NixOS deployments")
    .option("--format <format>", "amazon (EC2 VHD, config.system.build.amazonImage), iso (the minimal installation CD, config.system.build.isoImage) or raw")
    .option("--out <dir>", "copy the image file into this existing directory (an existing file of its name is never replaced); without it the store path is printed")
    .option("--arg <name=value>", "a module argument's value (JSON, or plain text for a string); needed for Terraform values the state does not have; repeatable", collect, []);
  addProjectOptions(definition)
    .action(async (names: string[], flags: ImageFlags) => {
      if (names.length === 0 || names.length > 2) {
        throw new UsageError(names.length === 0
          ? "image needs the host to build: cdktf-nixos image [stack] <host> --format amazon|iso|raw (e.g. cdktf-nixos image web --format amazon)"
          : `image takes [stack] <host>, got ${names.map((n) => `'${n}'`).join(" ")}`);
      }
      const [stack, hostName] = names.length === 2 ? names : [undefined, names[0]];
      const format = parseImageFormat(flags.format);
      const overrides = parseArgAssignments(flags.arg);
      const outDir = flags.out === undefined ? undefined : resolve(flags.out);
      if (outDir !== undefined) await checkOutDir(outDir);
      const local = await loadLocalHosts(resolve(flags.project), stack, synthModeOf(flags), (why) => output.stderr.write(`${why}\n`));
      const plan = planImage(findHost(local.hosts, hostName), format, overrides, local.stateProblem);
      const origins = Object.entries(plan.args.origins).map(([name, origin]) => `${name} from ${origin}`);
      output.stderr.write(`building the ${format} image of ${plan.host}${origins.length > 0 ? ` (module arguments: ${origins.join(", ")})` : ""}\n`);
      const built = await buildExpression(plan.build, { extraArgs: nixTraceArgs(flags), redact: plan.redact });
      const { path: file, size: bytes } = await imageFileIn(built, format);
      const written = outDir === undefined ? file : await copyImageTo(file, outDir);
      output.stderr.write(`${plan.host}: ${format} image, ${sizeText(bytes)} (${bytes} bytes)${outDir === undefined ? "" : `, copied from ${file}`}\n`);
      output.stdout.write(`${written}\n`);
    });
}
