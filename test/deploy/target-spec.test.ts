import { describe, expect, it } from "vitest";
import { parseTargetHost } from "../../src/deploy/target-spec";

describe("parseTargetHost", () => {
  it("reads user@host like nixos-rebuild --target-host", () => {
    expect(parseTargetHost("deploy@10.0.0.5")).toEqual({ user: "deploy", host: "10.0.0.5" });
    expect(parseTargetHost("web.example.com")).toEqual({ host: "web.example.com" });
  });

  it("refuses what is not [user@]host", () => {
    expect(() => parseTargetHost("@host")).toThrow("--target-host '@host' is not [user@]host (for example root@203.0.113.10)");
    expect(() => parseTargetHost("root@")).toThrow("--target-host 'root@' is not [user@]host");
    expect(() => parseTargetHost("root@host/path")).toThrow("is not [user@]host");
  });
});
