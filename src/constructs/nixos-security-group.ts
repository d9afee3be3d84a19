import { ValidationError } from "./validation-error";
import { Annotations, SecurityGroup, Token, type SecurityGroupIngress } from "./core";
import { Construct } from "constructs";
import { checkProps, securityGroupProps } from "./prop-types";
import { validateCidr, validatePort } from "./validation";

export enum NixosProtocol {
  TCP = "tcp",
  UDP = "udp",
}

/** One more port to open. */
export interface NixosIngressRule {
  readonly port: number;
  /** @default NixosProtocol.TCP */
  readonly protocol?: NixosProtocol;
  /** IPv4 and IPv6 CIDR blocks allowed to reach the port. */
  readonly cidrs: string[];
  /** @default - "<protocol>/<port>" */
  readonly description?: string;
}

export interface NixosSecurityGroupProps {
  /**
   * IPv4/IPv6 CIDR blocks allowed to reach SSH. Nothing is open by default: to allow the whole internet, say
   * `["0.0.0.0/0", "::/0"]` explicitly.
   * @default - no SSH ingress
   */
  readonly sshAllowedCidrs?: string[];
  /** @default 22 */
  readonly sshPort?: number;
  /** @default - no other ingress */
  readonly ingress?: NixosIngressRule[];
  /** @default - the region's default VPC */
  readonly vpcId?: string;
  /** @default - a name derived from the construct path */
  readonly name?: string;
  /** @default "NixOS hosts managed by cdktf-nixos" */
  readonly description?: string;
  /** @default - no tags */
  readonly tags?: { [key: string]: string };
}

/** A security group NixosInstance can use: one this library creates, or one that exists. */
export interface INixosSecurityGroup {
  readonly securityGroupId: string;
}

/** Security group of NixOS hosts: SSH from given CIDRs only, extra ports on request, all egress. */
export class NixosSecurityGroup extends Construct implements INixosSecurityGroup {
  /** A security group that already exists (aws-cdk's `fromXxx(scope, id, …)`): nothing is created for it. */
  static fromSecurityGroupId(scope: Construct, id: string, securityGroupId: string): INixosSecurityGroup {
    const where = `${scope?.node?.path ? `${scope.node.path}/` : ""}${id} (NixosSecurityGroup.fromSecurityGroupId)`;
    if (typeof securityGroupId !== "string" || (!/^sg-[0-9a-f]{8}([0-9a-f]{9})?$/.test(securityGroupId) && !Token.isUnresolved(securityGroupId))) {
      throw new ValidationError(`${JSON.stringify(securityGroupId)} is not a security group ID (sg- followed by 8 or 17 hex digits)`, where);
    }
    return new ImportedSecurityGroup(scope, id, securityGroupId);
  }

  readonly securityGroup: SecurityGroup;
  readonly securityGroupId: string;

  constructor(scope: Construct, id: string, props: NixosSecurityGroupProps = {}) {
    super(scope, id);
    const path = this.node.path;
    checkProps(`${path} (NixosSecurityGroup)`, securityGroupProps, props ?? {});
    const sshPort = props.sshPort ?? 22;
    validatePort(sshPort, `${path}: sshPort`);
    const rules: SecurityGroupIngress[] = [];
    const ssh = props.sshAllowedCidrs ?? [];
    if (ssh.length > 0) rules.push(ingressRule(sshPort, NixosProtocol.TCP, ssh, "SSH", `${path}: sshAllowedCidrs`));
    else Annotations.of(this).addWarning("no sshAllowedCidrs: nothing can reach SSH on these hosts, so nothing can deploy to them");
    if (ssh.includes("0.0.0.0/0") || ssh.includes("::/0")) {
      Annotations.of(this).addInfo("SSH is open to the whole internet, as sshAllowedCidrs says");
    }
    const seen = new Set<string>();
    for (const rule of props.ingress ?? []) {
      const protocol = rule.protocol ?? NixosProtocol.TCP;
      const key = `${protocol}/${rule.port}`;
      if (seen.has(key)) throw new ValidationError(`ingress ${key} is given twice; put every CIDR block of that port into one rule`, this);
      seen.add(key);
      validatePort(rule.port, `${path}: ingress port`);
      if (rule.cidrs.length === 0) throw new ValidationError(`ingress ${protocol}/${rule.port}: cidrs is empty; say who may connect`, this);
      rules.push(ingressRule(rule.port, protocol, rule.cidrs, rule.description ?? `${protocol}/${rule.port}`, `${path}: ingress cidrs`));
    }
    this.securityGroup = new SecurityGroup(this, "Resource", {
      name: props.name,
      namePrefix: props.name === undefined ? `${id.toLowerCase().replace(/[^a-z0-9-]/g, "-")}-` : undefined,
      description: props.description ?? "NixOS hosts managed by cdktf-nixos",
      vpcId: props.vpcId,
      ingress: rules,
      egress: [{
        description: "all egress",
        fromPort: 0,
        toPort: 0,
        protocol: "-1",
        cidrBlocks: ["0.0.0.0/0"],
        ipv6CidrBlocks: ["::/0"],
        prefixListIds: [],
        securityGroups: [],
        selfAttribute: false,
      }],
      tags: props.tags,
      lifecycle: { createBeforeDestroy: true },
    });
    this.securityGroupId = this.securityGroup.id;
  }
}

function ingressRule(port: number, protocol: NixosProtocol, cidrs: string[], description: string, what: string): SecurityGroupIngress {
  const kinds = cidrs.map((c) => validateCidr(c, what));
  return {
    description,
    fromPort: port,
    toPort: port,
    protocol,
    cidrBlocks: cidrs.filter((_, i) => kinds[i] !== "ipv6"),
    ipv6CidrBlocks: cidrs.filter((_, i) => kinds[i] === "ipv6"),
    prefixListIds: [],
    securityGroups: [],
    selfAttribute: false,
  };
}

/** An existing security group, by ID. */
class ImportedSecurityGroup extends Construct implements INixosSecurityGroup {
  constructor(scope: Construct, id: string, readonly securityGroupId: string) {
    super(scope, id);
  }
}
