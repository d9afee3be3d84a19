import { EC2Client } from "@aws-sdk/client-ec2";

/** An endpoint that accepts connections but never answers must not hang a command: every call is bounded. */
const CONNECT_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 20_000;

export interface Ec2Location {
  /** @default - the SDK's default (AWS_REGION, the profile) */
  readonly region?: string;
  /** @default - AWS (or AWS_ENDPOINT_URL_EC2) */
  readonly endpoint?: string;
}

/**
 * One sentence with the fix for what most often stops an EC2 call before it reaches EC2: no region, no credentials,
 * no network, a bad endpoint. Other errors (EC2's own) pass through.
 */
export function explainAwsError(err: unknown, action: string, location: Ec2Location): Error {
  const error = err as Error & { code?: string; name?: string };
  const endpoint = location.endpoint ?? process.env.AWS_ENDPOINT_URL_EC2;
  if (/Region is missing/i.test(error.message)) {
    return new Error(`${action} needs an AWS region: pass --region (e.g. --region eu-central-1) or set AWS_REGION`);
  }
  if (error.name === "CredentialsProviderError") {
    return new Error(`${action} needs AWS credentials and found none: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE ` +
      "(after aws sso login for an SSO profile)");
  }
  if (error.code !== undefined && ["ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"].includes(error.code)) {
    return new Error(`${action} could not reach ${endpoint ?? "EC2"} (${error.code}): check the network and any proxy` +
      `${endpoint !== undefined ? ", and the endpoint URL" : ""}`);
  }
  return error;
}

export function ec2Client(location: Ec2Location): EC2Client {
  return new EC2Client({
    region: location.region,
    endpoint: location.endpoint,
    requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
  });
}

/**
 * Runs `call` with an abort signal that fires after `ms`, and says which endpoint did not answer in time (the SDK
 * only says "aborted").
 */
export async function withinDeadline<T>(
  action: string,
  location: Ec2Location,
  ms: number,
  call: (abortSignal: AbortSignal) => Promise<T>,
): Promise<T> {
  const signal = AbortSignal.timeout(Math.max(ms, 1));
  try {
    return await call(signal);
  } catch (err) {
    if (!signal.aborted) throw err;
    const endpoint = location.endpoint ?? process.env.AWS_ENDPOINT_URL_EC2 ?? "the EC2 endpoint";
    throw new Error(`${endpoint} did not answer ${action} within ${Math.round(ms / 100) / 10} s`);
  }
}
