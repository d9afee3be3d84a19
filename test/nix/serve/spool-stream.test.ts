import { randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import type { RemoteProcess } from "../../../src/nix/remote-shell";
import { SEGMENT_BYTES, SPOOL_SEGMENTS } from "../../../src/nix/serve/copy-policy";
import { DataChannel, SpoolStream } from "../../../src/nix/serve/spool-stream";

/**
 * A stand-in for the data channel's remote loop (spool-commands.ts, tested in a real shell there): parses
 * "n size\n" + bytes, stores the segment, echoes n after `delayMs(n)`.
 */
function fakeDataProcess(spool: Map<number, Buffer>, delayMs: (n: number) => number): RemoteProcess & { end: (code: number | null) => void } {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let finish!: (code: number | null) => void;
  const exited = new Promise<number | null>((resolve) => (finish = resolve));
  let buffer = Buffer.alloc(0);
  stdin.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const nl = buffer.indexOf(10);
      if (nl < 0) return;
      const [n, size] = buffer.subarray(0, nl).toString().split(" ").map(Number);
      if (buffer.length < nl + 1 + size!) return;
      spool.set(n!, Buffer.from(buffer.subarray(nl + 1, nl + 1 + size!)));
      buffer = buffer.subarray(nl + 1 + size!);
      setTimeout(() => stdout.write(`${n}\n`), delayMs(n!));
    }
  });
  stdin.on("end", () => setTimeout(() => finish(0), 5));
  return { stdin, stdout, stderr, exited, close: () => finish(null), abort: () => finish(null), end: (code) => finish(code) };
}

function importerInput(): { stdin: PassThrough; lines: () => string[] } {
  const stdin = new PassThrough();
  let text = "";
  stdin.on("data", (c: Buffer) => (text += c.toString()));
  return { stdin, lines: () => text.split("\n").filter(Boolean) };
}

describe("the spooled stream", () => {
  it("cuts the stream into segments, uploads them in parallel and names them to the importer in stream order", async () => {
    const spool = new Map<number, Buffer>();
    const importer = importerInput();
    // channel 0 confirms slowly: later segments arrive first, the importer must still hear 0, 1, 2, ...
    const channels = [0, 1, 2].map((i) => new DataChannel(fakeDataProcess(spool, (n) => (i === 0 ? 30 : n % 3)), `data ${i}`, (err) => stream.failWith(err)));
    const stream: SpoolStream = new SpoolStream({ stdin: importer.stdin }, channels, { allowed: false, mode: "none" });
    const data = randomBytes(5 * SEGMENT_BYTES + 12345);
    importer.stdin.on("data", (c: Buffer) => {
      // the importer reads each named segment at once, which makes room in the spool
      for (const line of c.toString().split("\n")) if (/^\d+ r$/.test(line)) stream.consumedSegment();
    });
    for (let i = 0; i < data.length; i += 100_000) await stream.write(data.subarray(i, i + 100_000));
    await stream.finish();
    expect(importer.lines()).toEqual(["0 r", "1 r", "2 r", "3 r", "4 r", "5 r", "end"]);
    expect(Buffer.concat([...spool.keys()].sort((a, b) => a - b).map((n) => spool.get(n)!)).equals(data)).toBe(true);
    expect(stream.stats).toMatchObject({ segments: 6, compressedSegments: 0 });
    expect(stream.stats.wireBytes).toBeGreaterThan(data.length);
  });

  it("keeps at most SPOOL_SEGMENTS on the target until the importer has read some", async () => {
    const spool = new Map<number, Buffer>();
    const importer = importerInput();
    const channels = [0, 1].map((i) => new DataChannel(fakeDataProcess(spool, () => 0), `data ${i}`, (err) => stream.failWith(err)));
    const stream: SpoolStream = new SpoolStream({ stdin: importer.stdin }, channels, { allowed: false, mode: "none" });
    const chunk = Buffer.alloc(SEGMENT_BYTES, 1);
    let written = 0;
    const writer = (async () => {
      for (let i = 0; i < SPOOL_SEGMENTS + 5; i++) {
        await stream.write(chunk);
        written++;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(spool.size).toBe(SPOOL_SEGMENTS);
    expect(written).toBeLessThan(SPOOL_SEGMENTS + 5);
    for (let i = 0; i < 5; i++) stream.consumedSegment();
    await writer;
    await stream.finish();
    expect(spool.size).toBe(SPOOL_SEGMENTS + 5);
  });

  it("a data channel that dies fails the stream with its message and ends the importer's input", async () => {
    const spool = new Map<number, Buffer>();
    const importer = importerInput();
    let ended = false;
    importer.stdin.on("finish", () => (ended = true));
    const dying = fakeDataProcess(spool, () => 10_000);
    const channels = [new DataChannel(dying, "data 0", (err) => stream.failWith(err))];
    const stream: SpoolStream = new SpoolStream({ stdin: importer.stdin }, channels, { allowed: false, mode: "none" });
    await stream.write(Buffer.alloc(SEGMENT_BYTES));
    (dying.stderr as PassThrough).write("head: write error: No space left on device\n");
    dying.end(98);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await expect(stream.finish()).rejects.toThrow("uploading to the target's spool failed: head: write error: No space left on device");
    expect(stream.failure?.message).toContain("No space left on device");
    expect(ended).toBe(true);
  });

  it("stopped because the server failed, the stream reports no failure of its own: the channels it closed are the consequence", async () => {
    const spool = new Map<number, Buffer>();
    const importer = importerInput();
    const channels = [0, 1].map((i) => new DataChannel(fakeDataProcess(spool, () => 10_000), `data ${i}`, (err) => stream.failWith(err)));
    const stream: SpoolStream = new SpoolStream({ stdin: importer.stdin }, channels, { allowed: false, mode: "none" });
    await stream.write(Buffer.alloc(2 * SEGMENT_BYTES));
    stream.abort(new Error("no answer within 60 s while waiting for the acknowledgement"));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stream.failure).toBeUndefined();
  });

  it("tells the session whenever bytes moved on its channels, which keeps the session's reply deadline from running out on a busy link", async () => {
    const spool = new Map<number, Buffer>();
    const importer = importerInput();
    const channels = [new DataChannel(fakeDataProcess(spool, () => 0), "data 0", (err) => stream.failWith(err))];
    const stream: SpoolStream = new SpoolStream({ stdin: importer.stdin }, channels, { allowed: false, mode: "none" });
    let activity = 0;
    stream.onActivity = () => activity++;
    importer.stdin.on("data", (c: Buffer) => {
      for (const line of c.toString().split("\n")) if (/^\d+ r$/.test(line)) stream.consumedSegment();
    });
    await stream.write(Buffer.alloc(3 * SEGMENT_BYTES));
    await stream.finish();
    // each segment arrived whole and was read: at least two signs of life per segment
    expect(activity).toBeGreaterThanOrEqual(6);
  });
});
