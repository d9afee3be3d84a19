import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyClosure } from "../../../src/nix/serve/copy";
import { ServeSession } from "../../../src/nix/serve/session";
import { LocalStore, spawnServe } from "../../../src/nix/local-store";
import { buildSystem, closureOf } from "../../harness/fixture";
import { missing } from "../../harness/requirements";
import { run } from "../../harness/target-hosts";

/** The copy against a real second Nix store (a chroot store), with no SSH in between. */
describe.skipIf(missing("nix"))("serve session against a real nix-store --serve", () => {
  let dir: string;
  let source: LocalStore;
  const destination = () => join(dir, "store");
  const openDestination = (write = true) =>
    ServeSession.open(spawnServe("nix-store", ["--store", destination(), "--serve", ...(write ? ["--write"] : [])]));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "serve-world-"));
    source = await LocalStore.open();
  });
  afterAll(async () => {
    await source?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("greets Nix 2.8 with protocol 2.7", async () => {
    const session = await openDestination();
    expect(session.version).toBe(0x207);
    await session.close();
  });

  it("copies a closure cold, then a no-op sends one QueryValidPaths and no NAR bytes", async () => {
    const system = await buildSystem({ config: { networking: { hostName: "cold" }, lite: { payload: { paths: 8, sizeKiB: 128 } } } });
    const closure = await closureOf(system.toplevel);

    const cold = await openDestination();
    const report = await copyClosure({ source, target: cold, paths: [system.toplevel] });
    expect(report).toMatchObject({ pathsInClosure: closure.length, pathsCopied: closure.length, pathsAlreadyValid: 0 });
    expect(cold.stats).toMatchObject({ queryValidPaths: 1, addToStoreNar: closure.length });
    await cold.close();
    const verify = await run("nix-store", ["--store", destination(), "--verify", "--check-contents"], { check: false });
    expect(verify.exitCode).toBe(0);
    expect(verify.stderr).not.toMatch(/modified|corrupt|error/i);
    const there = await run("nix-store", ["--store", destination(), "--query", "--requisites", system.toplevel]);
    expect(there.stdout.split("\n").filter(Boolean).sort()).toEqual([...closure].sort());

    const noop = await openDestination();
    const again = await copyClosure({ source, target: noop, paths: [system.toplevel] });
    expect(again).toMatchObject({ pathsCopied: 0, bytesSent: 0, pathsAlreadyValid: closure.length });
    expect(noop.stats).toEqual({ queryValidPaths: 1, queryPathInfos: 0, queryClosure: 0, addToStoreNar: 0, narBytesSent: 0 });
    await noop.close();
  });

  it("surfaces Nix's refusal when the server was started without --write", async () => {
    const system = await buildSystem({ config: { networking: { hostName: "readonly" } } });
    const session = await openDestination(false);
    const attempt = copyClosure({ source, target: session, paths: [system.toplevel] });
    await expect(attempt).rejects.toThrow("importing paths is not allowed");
    await session.close();
  });
});
