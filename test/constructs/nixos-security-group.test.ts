import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group";
import { Testing, TerraformStack } from "cdktf";
import { describe, expect, it } from "vitest";
import { NixosProtocol, NixosSecurityGroup } from "../../src";

function synth(build: (stack: TerraformStack) => void): string {
  const stack = new TerraformStack(Testing.app(), "test");
  build(stack);
  return Testing.synth(stack);
}

describe("NixosSecurityGroup", () => {
  it("opens SSH to the given IPv4 and IPv6 blocks only, plus extra ports, with all egress", () => {
    const out = synth((stack) => new NixosSecurityGroup(stack, "web", {
      sshAllowedCidrs: ["203.0.113.0/24", "2001:db8::/32"],
      sshPort: 2222,
      ingress: [{ port: 443, cidrs: ["0.0.0.0/0"] }, { port: 51820, protocol: NixosProtocol.UDP, cidrs: ["198.51.100.7/32"], description: "wireguard" }],
      vpcId: "vpc-1",
      tags: { team: "ops" },
    }));
    expect(out).toHaveResourceWithProperties(SecurityGroup, {
      vpc_id: "vpc-1",
      name_prefix: "web-",
      tags: { team: "ops" },
      ingress: [
        expect.objectContaining({ description: "SSH", from_port: 2222, to_port: 2222, protocol: "tcp", cidr_blocks: ["203.0.113.0/24"], ipv6_cidr_blocks: ["2001:db8::/32"] }),
        expect.objectContaining({ description: "tcp/443", from_port: 443, protocol: "tcp", cidr_blocks: ["0.0.0.0/0"] }),
        expect.objectContaining({ description: "wireguard", from_port: 51820, protocol: "udp", cidr_blocks: ["198.51.100.7/32"] }),
      ],
      egress: [expect.objectContaining({ protocol: "-1", cidr_blocks: ["0.0.0.0/0"], ipv6_cidr_blocks: ["::/0"] })],
    });
  });

  it("opens nothing by default, and warns that nothing can deploy", () => {
    const app = Testing.app();
    const stack = new TerraformStack(app, "test");
    new NixosSecurityGroup(stack, "closed");
    const out = Testing.synth(stack);
    expect(out).toHaveResourceWithProperties(SecurityGroup, { ingress: [] });
    const warnings = stack.node.findAll().flatMap((c) => c.node.metadata).filter((m) => m.type === "@cdktf/warn").map((m) => m.data);
    expect(warnings).toEqual(["no sshAllowedCidrs: nothing can reach SSH on these hosts, so nothing can deploy to them"]);
  });

  it.each([
    [{ sshAllowedCidrs: ["203.0.113.0"] }, `sshAllowedCidrs: "203.0.113.0" is not a CIDR block`],
    [{ sshAllowedCidrs: ["2001:db8::/129"] }, `sshAllowedCidrs: "2001:db8::/129" is not a CIDR block`],
    [{ sshAllowedCidrs: ["10.0.0.5/24"] }, `bad: sshAllowedCidrs: "10.0.0.5/24" has host bits set; the block is "10.0.0.0/24" (or "10.0.0.5/32" for that one address)`],
    [{ sshAllowedCidrs: ["2001:db8::1/64"] }, `sshAllowedCidrs: "2001:db8::1/64" has host bits set; the block is "2001:db8::/64" (or "2001:db8::1/128" for that one address)`],
    [{ sshAllowedCidrs: ["::ffff:10.0.0.5/120"] }, `the block is "::ffff:a00:0/120"`],
    [{ sshPort: 70000 }, "sshPort: 70000 is not a port number (1-65535)"],
    [{ ingress: [{ port: 0, cidrs: ["0.0.0.0/0"] }] }, "ingress port: 0 is not a port number (1-65535)"],
    [{ ingress: [{ port: 80, cidrs: [] }] }, "ingress tcp/80: cidrs is empty; say who may connect"],
  ])("rejects %o", (props, message) => {
    expect(() => synth((stack) => new NixosSecurityGroup(stack, "bad", props))).toThrow(message);
  });
});
