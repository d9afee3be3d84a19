// No SDK here: the construct library checks endpoints at synth without loading the AWS SDK.

/** Why `endpoint` cannot be an EC2 endpoint URL; undefined when it can. */
export function endpointProblem(endpoint: string): string | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return `'${endpoint}' is not a URL; give one such as https://ec2.eu-central-1.amazonaws.com or http://127.0.0.1:4566`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `'${endpoint}' is not an http(s) URL; give one such as https://ec2.eu-central-1.amazonaws.com or http://127.0.0.1:4566`;
  }
  return undefined;
}
