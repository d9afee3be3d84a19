import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
// s3rver has no types; what the harness uses of it is typed here
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require("s3rver") as new (options: Record<string, unknown>) => { configureBuckets(): Promise<void>; callback(): (req: unknown, res: unknown) => void };

/** One request the server answered: who asked what (the tests count PUTs and hosts' GETs from here). */
export interface S3Request {
  readonly method: string;
  /** `/BUCKET/KEY` (path-style). */
  readonly path: string;
  readonly from: string;
  /** Bytes of the response body (what a GET sent). */
  bytesOut: number;
  /** Bytes of the request body (what a PUT sent). */
  bytesIn: number;
}

export interface S3Server {
  /** `http://ADDRESS:PORT`: the SDK's endpoint, and with `/BUCKET` an http:// binary cache Nix reads. */
  readonly endpoint: string;
  readonly requests: S3Request[];
  /** The credentials s3rver accepts (its defaults): for the SDK's default chain through the environment. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * The npm s3rver (a kept S3-compatible server) on `address`, with `buckets` made: the S3 API (signed requests from
 * the AWS SDK) and plain GETs (a Nix binary cache over http://). Every request is recorded.
 */
export async function startS3Server(address: string, buckets: readonly string[]): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), "cdktf-nixos-s3-"));
  const s3rver = new S3rver({ directory, silent: true, configureBuckets: buckets.map((name) => ({ name })) });
  await s3rver.configureBuckets();
  const handle = s3rver.callback();
  const requests: S3Request[] = [];
  const server: Server = createServer((req, res) => {
    const record: S3Request = { method: req.method ?? "", path: (req.url ?? "").split("?")[0]!, from: (req.socket.remoteAddress ?? "").replace(/^::ffff:/, ""), bytesOut: 0, bytesIn: 0 };
    requests.push(record);
    // counted from the header: a data listener here would take the body from s3rver
    record.bytesIn = Number(req.headers["content-length"] ?? 0);
    const count = (chunk: unknown) => {
      if (typeof chunk === "string" || Buffer.isBuffer(chunk) || chunk instanceof Uint8Array) record.bytesOut += Buffer.byteLength(chunk);
    };
    const write = res.write.bind(res);
    const end = res.end.bind(res);
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      count(chunk);
      return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof res.write;
    res.end = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== "function") count(chunk);
      return (end as (...args: unknown[]) => typeof res)(chunk, ...rest);
    }) as typeof res.end;
    handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, address, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://${address}:${port}`,
    requests,
    env: { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(directory, { recursive: true, force: true });
    },
  };
}
