import { DataAwsAmi } from "@cdktf/provider-aws/lib/data-aws-ami";
import { Instance } from "@cdktf/provider-aws/lib/instance";
import { KeyPair } from "@cdktf/provider-aws/lib/key-pair";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group";
import { Testing, TerraformStack } from "cdktf";
import { describe, expect, it } from "vitest";
import { NixosImage, NixosInstance, NixosKeyPair, NixosSecurityGroup } from "../../src";
import { architectureOfInstanceType } from "../../src/constructs/instance-architecture";
import { NixosArchitecture } from "../../src/aws/nixos-ami-names";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0Gk5m5ZpVz8c3fY4Ok7Rr8m0Yq0k7d0p2n6Qv5m4c3 ops@laptop";

function synth(build: (stack: TerraformStack) => void): string {
  const app = Testing.app();
  const stack = new TerraformStack(app, "test");
  build(stack);
  return Testing.synth(stack);
}

describe("NixosInstance", () => {
  it("defaults: latest 25.05 x86_64 image, t3.micro, 20 GiB encrypted gp3, IMDSv2, its own security group", () => {
    const out = synth((stack) => new NixosInstance(stack, "web", { keyPair: NixosKeyPair.fromKeyPairName(stack, "Ops", "ops") }));
    expect(out).toHaveDataSourceWithProperties(DataAwsAmi, {
      owners: ["427812963091"],
      most_recent: true,
      filter: [
        { name: "name", values: ["nixos/25.05.*-x86_64-linux"] },
        { name: "architecture", values: ["x86_64"] },
        { name: "state", values: ["available"] },
      ],
    });
    expect(out).toHaveResourceWithProperties(Instance, {
      instance_type: "t3.micro",
      key_name: "ops",
      root_block_device: { volume_type: "gp3", volume_size: 20, encrypted: true, delete_on_termination: true },
      metadata_options: { http_endpoint: "enabled", http_tokens: "required", http_put_response_hop_limit: 1 },
      tags: { Name: "web" },
    });
    expect(out).toHaveResource(SecurityGroup);
  });

  it("takes the issue's snippet as written", () => {
    const out = synth((stack) => {
      const web = new NixosInstance(stack, "web", {
        release: "25.05",
        instanceType: "t3.micro",
        rootVolumeSize: 50,
        sshAllowedCidrs: ["203.0.113.0/24"],
        keyPair: NixosKeyPair.fromPublicKey(stack, "ops", KEY),
      });
      expect(web.publicDns).toMatch(/\$\{TfToken/);
      expect(web.instanceId).toMatch(/\$\{TfToken/);
    });
    expect(out).toHaveResourceWithProperties(Instance, { root_block_device: expect.objectContaining({ volume_size: 50 }) });
    expect(out).toHaveResourceWithProperties(KeyPair, { public_key: KEY });
    expect(out).toHaveResourceWithProperties(SecurityGroup, {
      ingress: [expect.objectContaining({ from_port: 22, to_port: 22, protocol: "tcp", cidr_blocks: ["203.0.113.0/24"] })],
    });
  });

  it("picks the aarch64 image for Graviton instance types", () => {
    expect(architectureOfInstanceType("t4g.small")).toBe(NixosArchitecture.AARCH64);
    expect(architectureOfInstanceType("c7gn.large")).toBe(NixosArchitecture.AARCH64);
    expect(architectureOfInstanceType("a1.medium")).toBe(NixosArchitecture.AARCH64);
    expect(architectureOfInstanceType("g5.xlarge")).toBe(NixosArchitecture.X86_64);
    expect(architectureOfInstanceType("m7i.large")).toBe(NixosArchitecture.X86_64);
    const out = synth((stack) => new NixosInstance(stack, "db", { instanceType: "m7g.large", keyPair: NixosKeyPair.fromKeyPairName(stack, "Ops", "ops") }));
    expect(out).toHaveDataSourceWithProperties(DataAwsAmi, {
      filter: [
        { name: "name", values: ["nixos/25.05.*-aarch64-linux"] },
        { name: "architecture", values: ["arm64"] },
        { name: "state", values: ["available"] },
      ],
    });
  });

  it("passes network placement, user data, tags and existing security groups through", () => {
    const out = synth((stack) => new NixosInstance(stack, "app", {
      image: NixosImage.fromAmiId("ami-0123456789abcdef0"),
      keyPair: NixosKeyPair.fromKeyPairName(stack, "Ops", "ops"),
      securityGroups: [NixosSecurityGroup.fromSecurityGroupId(stack, "Web", "sg-0123456789abcdef0")],
      subnetId: "subnet-1",
      associatePublicIpAddress: false,
      userData: "#!/bin/sh\necho hi",
      tags: { role: "app" },
    }));
    expect(out).toHaveResourceWithProperties(Instance, {
      ami: "ami-0123456789abcdef0",
      vpc_security_group_ids: ["sg-0123456789abcdef0"],
      subnet_id: "subnet-1",
      associate_public_ip_address: false,
      user_data: "#!/bin/sh\necho hi",
      tags: { Name: "app", role: "app" },
    });
    expect(out).not.toHaveResource(SecurityGroup);
    expect(out).not.toHaveDataSource(DataAwsAmi);
  });

  it.each([
    [{ rootVolumeSize: 0 }, "rootVolumeSize 0 is out of range: a whole number of GiB from 1 to 16384 (gp3)"],
    [{ rootVolumeSize: 12.5 }, "rootVolumeSize 12.5 is out of range"],
    [{ instanceType: "t3micro" }, `instanceType "t3micro" is not an EC2 instance type (e.g. "t3.micro", "m7g.large")`],
    [{ release: "25.5" }, `release must be a NixOS release such as "25.05" (YY.05 or YY.11), got "25.5"`],
    [{ release: "25.05", image: NixosImage.fromAmiId("ami-0123456789abcdef0") }, `give either image or release, not both`],
    [{ securityGroups: [{ securityGroupId: "sg-01234567" }], sshAllowedCidrs: ["10.0.0.0/8"] }, "sshAllowedCidrs only applies to the security group created when securityGroups is not given"],
    [{ sshAllowedCidrs: ["10.0.0.0/33"] }, `sshAllowedCidrs: "10.0.0.0/33" is not a CIDR block (e.g. "203.0.113.0/24" or "2001:db8::/32")`],
    [{ instanceType: "t4g.small", image: NixosImage.fromAmiId("ami-0123456789abcdef0", NixosArchitecture.X86_64) }, `image is x86_64 but instanceType "t4g.small" is aarch64`],
  ])("rejects %o", (props, message) => {
    expect(() => synth((stack) => new NixosInstance(stack, "bad", { keyPair: NixosKeyPair.fromKeyPairName(stack, "Ops", "ops"), ...props }))).toThrow(message);
  });

  it("uses the stack's own security groups, and refuses what is not a security group ID", () => {
    const out = synth((stack) => {
      const web = new NixosSecurityGroup(stack, "WebGroup", { sshAllowedCidrs: ["10.0.0.0/8"] });
      new NixosInstance(stack, "web", { keyPair: NixosKeyPair.fromKeyPairName(stack, "Ops", "ops"), securityGroups: [web] });
    });
    expect(out).toHaveResourceWithProperties(Instance, { vpc_security_group_ids: ["${aws_security_group.WebGroup_EF1EEEC0.id}"] });
    expect(() => synth((stack) => NixosSecurityGroup.fromSecurityGroupId(stack, "Web", "web")))
      .toThrow('test/Web (NixosSecurityGroup.fromSecurityGroupId): "web" is not a security group ID (sg- followed by 8 or 17 hex digits)');
  });

  it("rejects what is not an AMI ID", () => {
    expect(() => NixosImage.fromAmiId("ubuntu")).toThrow(`"ubuntu" is not an AMI ID (ami- followed by 8 or 17 hex digits)`);
  });
});
