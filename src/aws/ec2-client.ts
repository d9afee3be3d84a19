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
