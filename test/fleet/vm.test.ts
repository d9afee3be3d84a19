import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalArgsError, type LocalHost } from "../../src/fleet/local-args";
import { VmDiskError, findHost, inspectVmDisk, planVm, removeVmDisk, vmDiskImage } from "../../src/fleet/vm";
import { deploymentSpec } from "./deployment-spec";

const web: LocalHost = {
  name: "web",
  spec: deploymentSpec("web", { nixosArgs: { greeting: "${var.greeting}", port: 8080 } }),
  tags: {},
  input: { nixos_args: { greeting: "hi \"there\"", port: 8080 } },
};

describe("planVm", () => {
  it("builds the deployment's configuration as <nixpkgs/nixos>'s vm, with the module arguments on Nix's stdin", () => {
    const plan = planVm(web, {});
    expect(plan.build).toEqual({
      expression: '(import <nixpkgs/nixos> { configuration = { imports = [ "/work/app/nixos/web.nix" ]; _module.args = ' +
        'builtins.fromJSON "{\\"greeting\\":\\"hi \\\\\\"there\\\\\\"\\",\\"port\\":8080}"; }; }).vm',
      includes: ["nixpkgs=/work/nixpkgs", "nixos-config=/work/app/nixos/web.nix"],
      what: "the VM of web",
    });
    expect(plan.args.origins).toEqual({ greeting: "state", port: "stack" });
  });

  it("a flake host: nixosConfigurations.NAME.config.system.build.vm", () => {
    const plan = planVm({ ...web, spec: deploymentSpec("web", { source: { flake: "path:/work/infra#web" } }) }, {});
    expect(plan.build).toEqual({
      expression: '(builtins.getFlake "path:/work/infra").nixosConfigurations.web.config.system.build.vm',
      includes: [],
      flakes: true,
      what: "the VM of web",
    });
  });

  it("refuses an unknown --arg and an unknown host", () => {
    expect(() => planVm(web, { gretting: "x" })).toThrow(new LocalArgsError("--arg gretting: no module argument of web has that name (they have: greeting, port)"));
    expect(() => findHost([web], "wbe")).toThrow(new LocalArgsError("the stack has no host 'wbe' (hosts: web)"));
  });
});

describe("vmDiskImage", () => {
  it("is NAME.qcow2 in the current directory, or NIX_DISK_IMAGE", () => {
    expect(vmDiskImage("/nix/store/x-nixos-vm/bin/run-web-vm", "/work/app", {})).toBe("/work/app/web.qcow2");
    expect(vmDiskImage("/nix/store/x-nixos-vm/bin/run-db-replica-vm", "/work/app", {})).toBe("/work/app/db-replica.qcow2");
    expect(vmDiskImage("/nix/store/x-nixos-vm/bin/run-web-vm", "/work/app", { NIX_DISK_IMAGE: "/tmp/web.img" })).toBe("/tmp/web.img");
  });
});

describe("the VM's disk: recognised by content before --fresh removes it or the VM boots from it", () => {
  const dir = mkdtempSync(join(tmpdir(), "vm-disk-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const reason = (path: string, what: string, fromEnvironment = true) =>
    new VmDiskError(`${path} is ${what}, not a VM disk: cdktf-nixos neither boots from it nor removes it; ` + (fromEnvironment
      ? "NIX_DISK_IMAGE names it: unset NIX_DISK_IMAGE, or point it at a VM disk or at a path that does not exist yet"
      : "move it away, or set NIX_DISK_IMAGE to where the VM should keep its disk"));

  it("removes a qcow2 image and a nixpkgs-lite disk directory, and nothing is there afterwards", async () => {
    const qcow2 = join(dir, "web.qcow2");
    writeFileSync(qcow2, Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]), Buffer.alloc(100)]));
    expect(await inspectVmDisk(qcow2, false)).toBe("qcow2");
    await removeVmDisk(qcow2, "qcow2");
    expect(existsSync(qcow2)).toBe(false);
    expect(await inspectVmDisk(qcow2, false)).toBe("missing");

    const lite = join(dir, "db.qcow2");
    mkdirSync(join(lite, "root"), { recursive: true });
    writeFileSync(join(lite, "root", "was-here"), "");
    writeFileSync(join(lite, "nixos-lite-disk"), "nixpkgs-lite VM disk\n");
    expect(await inspectVmDisk(lite, false)).toBe("nixpkgs-lite");
    await removeVmDisk(lite, "nixpkgs-lite");
    expect(existsSync(lite)).toBe(false);
  });

  it.each<[string, (path: string) => void, string]>([
    ["a user's file (NIX_DISK_IMAGE left over in a shell)", (p) => writeFileSync(p, "my thesis\n"), "a file that does not start with QEMU's qcow2 header"],
    ["an empty file", (p) => writeFileSync(p, ""), "a file that does not start with QEMU's qcow2 header"],
    ["a user's directory (NIX_DISK_IMAGE=$HOME)", (p) => { mkdirSync(join(p, "sub"), { recursive: true }); writeFileSync(join(p, "sub", "data.txt"), "x"); }, "a directory"],
    ["a directory with the marker and files of the user's", (p) => { mkdirSync(p); writeFileSync(join(p, "nixos-lite-disk"), ""); writeFileSync(join(p, "notes.txt"), "x"); }, "a directory"],
    ["a directory whose marker is a directory", (p) => mkdirSync(join(p, "nixos-lite-disk"), { recursive: true }), "a directory"],
  ])("refuses %s and leaves it as it was", async (_what, make, what) => {
    const path = join(dir, `case-${Math.random().toString(36).slice(2)}`);
    make(path);
    const before = execFileSync("find", [path, "-printf", "%p %s %y\\n"], { encoding: "utf8" });
    await expect(inspectVmDisk(path, true)).rejects.toEqual(reason(path, what));
    expect(execFileSync("find", [path, "-printf", "%p %s %y\\n"], { encoding: "utf8" })).toBe(before);
  });

  it("refuses a symbolic link, even to a qcow2 image, and a FIFO", async () => {
    const image = join(dir, "real.qcow2");
    writeFileSync(image, Buffer.from([0x51, 0x46, 0x49, 0xfb]));
    const link = join(dir, "link.qcow2");
    symlinkSync(image, link);
    await expect(inspectVmDisk(link, false)).rejects.toEqual(reason(link, `a symbolic link (to ${image})`, false));
    const fifo = join(dir, "fifo.qcow2");
    execFileSync("mkfifo", [fifo]);
    await expect(inspectVmDisk(fifo, true)).rejects.toEqual(reason(fifo, "neither a file nor a directory"));
    expect(existsSync(image)).toBe(true);
  });
});
