import { describe, expect, it } from "vitest";
import {
  CompressionUnavailableError,
  chooseTransport,
  dataChannelsFor,
  SPOOL_MIN_BYTES,
  shouldCompressSegment,
  spoolPays,
  type TransportInputs,
} from "../../../src/nix/serve/copy-policy";

const target = { exactFraming: true, zstd: true };
const inputs = (over: Partial<TransportInputs>): TransportInputs => ({ rttMs: 0.5, compress: "auto", maxChannels: 8, target, localZstd: () => true, ...over });

describe("copy policy", () => {
  it("uses as many channels as keep the round trip busy: one on a LAN, eight 50 ms away, never above the limit", () => {
    expect([0.2, 2, 6, 7, 10, 25, 50, 200].map((rtt) => dataChannelsFor(rtt))).toEqual([1, 1, 1, 2, 2, 4, 8, 8]);
    expect(dataChannelsFor(50, 3)).toBe(3);
    expect(dataChannelsFor(-1)).toBe(1);
  });

  it.each([
    ["LAN, auto", inputs({}), { kind: "direct", dataChannels: 1, compress: false }],
    ["LAN, --compress none", inputs({ compress: "none" }), { kind: "direct", dataChannels: 1, compress: false }],
    ["LAN, --compress zstd", inputs({ compress: "zstd" }), { kind: "spooled", dataChannels: 1, compress: true }],
    ["50 ms, auto", inputs({ rttMs: 50 }), { kind: "spooled", dataChannels: 8, compress: true }],
    ["50 ms, --compress none", inputs({ rttMs: 50, compress: "none" }), { kind: "spooled", dataChannels: 8, compress: false }],
    ["50 ms, --max-channels 1", inputs({ rttMs: 50, maxChannels: 1 }), { kind: "direct", dataChannels: 1, compress: false }],
    ["50 ms, no zstd on the target", inputs({ rttMs: 50, target: { exactFraming: true, zstd: false } }), { kind: "spooled", dataChannels: 8, compress: false }],
    ["50 ms, no zstd here", inputs({ rttMs: 50, localZstd: () => false }), { kind: "spooled", dataChannels: 8, compress: false }],
    ["50 ms, head -c not exact", inputs({ rttMs: 50, target: { exactFraming: false, zstd: true } }), { kind: "direct", dataChannels: 1, compress: false }],
    ["50 ms, probe unanswered", inputs({ rttMs: 50, target: undefined }), { kind: "direct", dataChannels: 1, compress: false }],
  ] as const)("%s", (_name, given, expected) => {
    expect(chooseTransport(given)).toMatchObject(expected);
  });

  it("says why a forced zstd cannot be honoured, before anything is sent", () => {
    expect(() => chooseTransport(inputs({ compress: "zstd", localZstd: () => false }))).toThrow(new CompressionUnavailableError("--compress zstd needs zstd on this machine, and it is not on PATH"));
    expect(() => chooseTransport(inputs({ compress: "zstd", target: { exactFraming: true, zstd: false } }))).toThrow("--compress zstd needs zstd on the target, and it is not on its PATH");
    expect(() => chooseTransport(inputs({ compress: "zstd", target: { exactFraming: false, zstd: true } }))).toThrow("head -c");
  });

  it("explains its choice", () => {
    expect(chooseTransport(inputs({ rttMs: 50 })).reason).toBe("50.0 ms round trip: one channel would carry only 40 MiB/s");
    expect(chooseTransport(inputs({})).reason).toBe("0.5 ms round trip: one channel is not window-bound");
  });

  it("takes the spool far away only for enough bytes (or forced zstd)", () => {
    const far = chooseTransport(inputs({ rttMs: 50 }));
    expect(spoolPays(far, "auto", SPOOL_MIN_BYTES)).toBe(true);
    expect(spoolPays(far, "auto", SPOOL_MIN_BYTES - 1)).toBe(false);
    expect(spoolPays(far, "zstd", 1)).toBe(true);
    expect(spoolPays(chooseTransport(inputs({})), "auto", 10 * SPOOL_MIN_BYTES)).toBe(false);
  });

  it("compresses a segment when zstd shrinks it and the link is slower than zstd", () => {
    expect(shouldCompressSegment(true, "auto", {})).toBe(true); // nothing measured yet: far links start compressed
    expect(shouldCompressSegment(true, "auto", { ratio: 3, linkBytesPerSecond: 12e6, zstdBytesPerSecond: 400e6 })).toBe(true);
    expect(shouldCompressSegment(true, "auto", { ratio: 3, linkBytesPerSecond: 900e6, zstdBytesPerSecond: 400e6 })).toBe(false);
    expect(shouldCompressSegment(true, "auto", { ratio: 1.01, linkBytesPerSecond: 12e6, zstdBytesPerSecond: 400e6 })).toBe(false);
    expect(shouldCompressSegment(true, "zstd", { ratio: 1.01 })).toBe(true);
    expect(shouldCompressSegment(true, "none", {})).toBe(false);
    expect(shouldCompressSegment(false, "auto", {})).toBe(false);
  });
});
