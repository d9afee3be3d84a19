import { describe, expect, it } from "vitest";
import { parseJumpHost, parseTargetHost } from "../../src/spec/target";

describe("parseTargetHost", () => {
  it("reads user@host like nixos-rebuild --target-host", () => {
    expect(parseTargetHost("deploy@10.0.0.5")).toEqual({ user: "deploy", host: "10.0.0.5" });
    expect(parseTargetHost("web.example.com")).toEqual({ host: "web.example.com" });
  });

  it("refuses what is not [user@]host", () => {
    expect(() => parseTargetHost("@host")).toThrow("--target-host '@host' is not [user@]host (for example root@203.0.113.10, or root@2001:db8::1 for IPv6)");
    // IPv6 literals, bare or in brackets as ssh writes them; a port goes in --target-port
    expect(parseTargetHost("root@2001:db8::1")).toEqual({ user: "root", host: "2001:db8::1" });
    expect(parseTargetHost("root@[2001:db8::1]")).toEqual({ user: "root", host: "2001:db8::1" });
    expect(() => parseTargetHost("root@[2001:db8::1]:2222")).toThrow("--target-host 'root@[2001:db8::1]:2222' includes a port: pass --target-host root@2001:db8::1 --target-port 2222");
    expect(() => parseTargetHost("root@[not-an-address]")).toThrow("is not [user@]host");
    expect(() => parseTargetHost("root@")).toThrow("--target-host 'root@' is not [user@]host");
    expect(() => parseTargetHost("root@host/path")).toThrow("is not [user@]host");
    expect(() => parseTargetHost("root@web!")).toThrow("is not [user@]host");
    expect(() => parseTargetHost("root@10.0.0.5:22")).toThrow("--target-host 'root@10.0.0.5:22' includes a port: pass --target-host root@10.0.0.5 --target-port 22");
    expect(() => parseTargetHost("[2001:db8::1]:2222")).toThrow("includes a port: pass --target-host 2001:db8::1 --target-port 2222");
    expect(parseTargetHost("root@2001:db8::1")).toEqual({ user: "root", host: "2001:db8::1" });
  });

  it("refuses a jump host that is not [user@]host[:port]", () => {
    expect(parseJumpHost("admin@bastion.example.com:2222")).toEqual({ user: "admin", host: "bastion.example.com", port: 2222 });
    for (const garbage of ["!!!", "admin@", "a b", "bastion:ssh", "user@host@host", "bastion:0"]) {
      expect(() => parseJumpHost(garbage)).toThrow(`--jump-host '${garbage}' is not [user@]host[:port] (for example admin@bastion.example.com:22)`);
    }
  });
});
