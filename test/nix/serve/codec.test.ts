import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  ServeReader,
  encodeString,
  encodeStrings,
  encodeU64,
  readHello,
  readPathInfos,
  writeAddToStoreNarHeader,
  writeHello,
  writeQueryClosure,
  writeQueryPathInfos,
  writeQueryValidPaths,
} from "../../../src/nix/serve/codec";

const hex = (b: Buffer) => b.toString("hex");
const collect = (encode: (write: (b: Buffer) => void) => void) => {
  const parts: Buffer[] = [];
  encode((b) => parts.push(b));
  return Buffer.concat(parts);
};
const u64 = (n: number) => hex(encodeU64(n));
const str = (s: string) => hex(encodeString(s));

function readerOf(...chunks: Buffer[]): ServeReader {
  const stream = new PassThrough();
  const reader = new ServeReader(stream);
  for (const c of chunks) stream.write(c);
  stream.end();
  return reader;
}

describe("encoding", () => {
  it("pads strings to 8 bytes after a little-endian length", () => {
    expect(hex(encodeString("abc"))).toBe("0300000000000000" + "6162630000000000");
    expect(hex(encodeString(""))).toBe("0000000000000000");
    expect(hex(encodeString("12345678"))).toBe("0800000000000000" + "3132333435363738");
  });

  it("greets with SERVE_MAGIC_1 and protocol 2.7", () => {
    expect(hex(collect((w) => writeHello(w)))).toBe("eb9d0c3900000000" + "0702000000000000");
  });

  it("encodes QueryValidPaths with lock and substitute flags", () => {
    expect(hex(collect((w) => writeQueryValidPaths(w, ["/nix/store/a"], { lock: false, substitute: true })))).toBe(
      u64(1) + u64(0) + u64(1) + u64(1) + str("/nix/store/a"),
    );
  });

  it("encodes QueryPathInfos and QueryClosure", () => {
    expect(hex(collect((w) => writeQueryPathInfos(w, ["/nix/store/a", "/nix/store/b"])))).toBe(
      u64(2) + u64(2) + str("/nix/store/a") + str("/nix/store/b"),
    );
    expect(hex(collect((w) => writeQueryClosure(w, ["/nix/store/a"], false)))).toBe(u64(7) + u64(0) + u64(1) + str("/nix/store/a"));
  });

  it("encodes the AddToStoreNar header field by field", () => {
    const header = collect((w) =>
      writeAddToStoreNarHeader(w, {
        path: "/nix/store/p",
        narHash: "sha256:abc",
        references: ["/nix/store/r"],
        narSize: 1024,
        registrationTime: 7,
        ultimate: true,
        sigs: ["k:sig"],
      }),
    );
    expect(hex(header)).toBe(
      u64(9) + str("/nix/store/p") + str("") + str("sha256:abc") + hex(encodeStrings(["/nix/store/r"])) +
        u64(7) + u64(1024) + u64(1) + hex(encodeStrings(["k:sig"])) + str(""),
    );
  });
});

describe("ServeReader", () => {
  it("reads integers and strings split across chunks", async () => {
    const bytes = Buffer.concat([encodeU64(5), encodeStrings(["/nix/store/x", "y"])]);
    const reader = readerOf(bytes.subarray(0, 3), bytes.subarray(3, 13), bytes.subarray(13));
    expect(await reader.readU64()).toBe(5);
    expect(await reader.readStrings()).toEqual(["/nix/store/x", "y"]);
  });

  it("reads path infos until the empty path", async () => {
    const reply = Buffer.concat([
      encodeString("/nix/store/p"), encodeString("/nix/store/p.drv"), encodeStrings(["/nix/store/q"]),
      encodeU64(100), encodeU64(100), encodeString("sha256:h"), encodeString(""), encodeStrings([]),
      encodeString(""),
    ]);
    expect(await readPathInfos(readerOf(reply))).toEqual([{
      path: "/nix/store/p", deriver: "/nix/store/p.drv", references: ["/nix/store/q"], narSize: 100,
      narHash: "sha256:h", ca: undefined, sigs: [], registrationTime: 0, ultimate: false,
    }]);
  });

  it("reports the end of the stream with what was expected", async () => {
    await expect(readerOf(Buffer.from([1, 2])).readU64("the acknowledgement")).rejects.toThrow(
      "connection closed while reading the acknowledgement",
    );
  });
});

describe("handshake", () => {
  const greeting = (version: number) => Buffer.concat([encodeU64(0x5452eecb), encodeU64(version)]);

  it("speaks 2.7 with 2.7 and newer servers, and 2.5 with a 2.5 server", async () => {
    expect(await readHello(readerOf(greeting(0x207)))).toBe(0x207);
    expect(await readHello(readerOf(greeting(0x208)))).toBe(0x207);
    expect(await readHello(readerOf(greeting(0x205)))).toBe(0x205);
  });

  it("refuses servers without AddToStoreNar", async () => {
    await expect(readHello(readerOf(greeting(0x204)))).rejects.toThrow(
      "the target's nix-store --serve speaks protocol 2.4 (0x204); cdktf-nixos needs 2.5 (0x205) or newer (Nix 2.4+)",
    );
  });

  it("keeps what a chatty shell printed instead of the greeting", async () => {
    await expect(readHello(readerOf(Buffer.from("Welcome to my server!\n"), greeting(0x207)))).rejects.toMatchObject({
      name: "ProtocolMismatchError",
    });
  });
});
