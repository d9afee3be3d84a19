/** AWS's commercial, China and GovCloud regions as of 2026; newer ones are accepted as long as they look like one. */
const KNOWN_REGIONS = [
  "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
  "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
  "ca-central-1", "ca-west-1", "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
  "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1", "mx-central-1",
  "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1", "us-gov-west-1", "us-west-1", "us-west-2",
];

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/**
 * Why `region` cannot be an AWS region, found offline: not shaped like one, or a near miss of a known one (a typo
 * would otherwise surface as "could not reach EC2 (ENOTFOUND)"). Undefined for a known region or a new one.
 */
export function regionProblem(region: string): string | undefined {
  if (KNOWN_REGIONS.includes(region)) return undefined;
  const near = KNOWN_REGIONS.find((known) => editDistance(known, region) <= 2);
  if (near !== undefined) return `"${region}" is not an AWS region; did you mean "${near}"?`;
  if (!/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(region)) return `"${region}" is not an AWS region (e.g. "eu-central-1", "us-east-1")`;
  return undefined;
}
