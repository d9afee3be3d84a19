import { GetConsoleOutputCommand } from "@aws-sdk/client-ec2";
import { ec2Client, explainAwsError, withinDeadline } from "./ec2-client";

/** One line of the block NixOS prints on the EC2 console at boot (`ssh-keygen -l` of each host key). */
export interface ConsoleHostKey {
  readonly bits: number;
  /** `SHA256:…`, as OpenSSH prints fingerprints. */
  readonly fingerprint: string;
  /** ED25519, RSA, ECDSA… */
  readonly type: string;
}

const BEGIN = "-----BEGIN SSH HOST KEY FINGERPRINTS-----";
const END = "-----END SSH HOST KEY FINGERPRINTS-----";

/**
 * The host key fingerprints in an instance's console output: NixOS's amazon image prints them between BEGIN/END
 * marker lines (nixpkgs nixos/modules/virtualisation/ec2-data.nix). Undefined while the block has not appeared.
 * The last complete block wins: the console keeps earlier boots.
 */
export function parseConsoleHostKeys(consoleText: string): ConsoleHostKey[] | undefined {
  const text = consoleText.replace(/\r/g, "");
  const end = text.lastIndexOf(END);
  if (end < 0) return undefined;
  const begin = text.lastIndexOf(BEGIN, end);
  if (begin < 0) return undefined;
  const keys: ConsoleHostKey[] = [];
  for (const line of text.slice(begin + BEGIN.length, end).split("\n")) {
    const match = /(\d+)\s+(SHA256:[A-Za-z0-9+/]+)\s.*\((\w+)\)\s*$/.exec(line);
    if (match) keys.push({ bits: Number(match[1]), fingerprint: match[2], type: match[3] });
  }
  return keys;
}

export interface ConsoleHostKeyQuery {
  readonly instanceId: string;
  /** @default - the SDK's default region */
  readonly region?: string;
  /** @default - AWS (or AWS_ENDPOINT_URL_EC2) */
  readonly endpoint?: string;
  /**
   * How long to wait for the block: EC2 publishes console output minutes after boot.
   * @default 600000
   */
  readonly timeoutMs?: number;
  readonly onWait?: (attempt: number) => void;
}

/** Polls GetConsoleOutput with backoff until the fingerprint block appears, and returns its fingerprints. */
export async function waitForConsoleHostKeys(query: ConsoleHostKeyQuery): Promise<string[]> {
  const client = ec2Client(query);
  const deadline = Date.now() + (query.timeoutMs ?? 600_000);
  try {
    for (let attempt = 0; ; attempt++) {
      // a call that hangs is bounded by what is left of the wait
      const { Output } = await withinDeadline("GetConsoleOutput", query, deadline - Date.now(), (abortSignal) =>
        client.send(new GetConsoleOutputCommand({ InstanceId: query.instanceId, Latest: true }), { abortSignal }).catch((err: unknown) => {
          throw explainAwsError(err, "GetConsoleOutput", query);
        }));
      const keys = parseConsoleHostKeys(Buffer.from(Output ?? "", "base64").toString("utf8"));
      if (keys !== undefined && keys.length > 0) return keys.map((k) => k.fingerprint);
      const delay = Math.min(1000 * 2 ** attempt, 15_000);
      if (Date.now() + delay > deadline) {
        const region = await client.config.region();
        throw new Error(
          `the EC2 console output of ${query.instanceId} in ${region} has no SSH host key fingerprints yet ` +
            `(waited ${Math.round((query.timeoutMs ?? 600_000) / 1000)} s); NixOS AMIs print them once sshd has generated its keys`,
        );
      }
      query.onWait?.(attempt + 1);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  } finally {
    client.destroy();
  }
}
