import { DescribeImagesCommand } from "@aws-sdk/client-ec2";
import { ec2Client, explainAwsError, withinDeadline } from "./ec2-client";
import { endpointProblem } from "./endpoint";
import { NIXOS_AMI_OWNER, NixosArchitecture, ec2Architecture, nixosAmiNamePattern, validateRelease } from "./nixos-ami-names";

export interface AmiQuery {
  readonly release: string;
  readonly architecture: NixosArchitecture;
  /** @default - the SDK's default (AWS_REGION, the profile) */
  readonly region?: string;
  /** EC2 endpoint URL, e.g. a local test double. @default - AWS (or AWS_ENDPOINT_URL_EC2) */
  readonly endpoint?: string;
  /**
   * How long the lookup may take in all (retries included).
   * @default 60000
   */
  readonly timeoutMs?: number;
}

export interface NixosAmi {
  readonly imageId: string;
  readonly name: string;
  readonly creationDate: string;
  readonly architecture: NixosArchitecture;
  readonly region: string;
}

/** The newest official NixOS AMI of a release, as DescribeImages lists it (what the NixosImage data source picks). */
export async function findLatestNixosAmi(query: AmiQuery): Promise<NixosAmi> {
  validateRelease(query.release);
  const badEndpoint = query.endpoint === undefined ? undefined : endpointProblem(query.endpoint);
  if (badEndpoint !== undefined) throw new Error(`endpoint ${badEndpoint}`);
  const client = ec2Client(query);
  try {
    const region = await client.config.region().catch((err: unknown) => {
      throw explainAwsError(err, "DescribeImages", query);
    });
    const { Images = [] } = await withinDeadline("DescribeImages", query, query.timeoutMs ?? 60_000, (abortSignal) => client.send(new DescribeImagesCommand({
      Owners: [NIXOS_AMI_OWNER],
      Filters: [
        { Name: "name", Values: [nixosAmiNamePattern(query.release, query.architecture)] },
        { Name: "architecture", Values: [ec2Architecture(query.architecture)] },
        { Name: "state", Values: ["available"] },
      ],
    }), { abortSignal }).catch((err: unknown) => {
      throw explainAwsError(err, "DescribeImages", query);
    }));
    const newest = Images.filter((i) => i.ImageId && i.CreationDate)
      .sort((a, b) => (b.CreationDate as string).localeCompare(a.CreationDate as string))[0];
    if (newest === undefined) {
      throw new Error(
        `no NixOS ${query.release} AMI for ${query.architecture} in ${region} (owner ${NIXOS_AMI_OWNER}, name ` +
          `${nixosAmiNamePattern(query.release, query.architecture)}); AMIs are deleted 90 days after upload, try a newer release`,
      );
    }
    return {
      imageId: newest.ImageId as string,
      name: newest.Name ?? "",
      creationDate: newest.CreationDate as string,
      architecture: query.architecture,
      region,
    };
  } finally {
    client.destroy();
  }
}
