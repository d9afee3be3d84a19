import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { bodyStream, type CacheBody, type CacheStore } from "../nix/binary-cache/cache-store";
import { explainAwsError } from "./ec2-client";

/** Above this a NAR goes up in parts (and each part is retried alone). */
const PART_BYTES = 16 * 1024 * 1024;
const PARTS_AT_ONCE = 4;
/** The SDK's retries (with backoff) per request: a flaky link or S3's 503 SlowDown is retried, not fatal. */
const MAX_ATTEMPTS = 6;
const CONNECT_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 120_000;

export interface S3CacheLocation {
  readonly url: string;
  readonly bucket: string;
  readonly region: string | undefined;
  readonly endpoint: string | undefined;
  readonly profile: string | undefined;
}

/**
 * An `s3://` binary cache through the AWS SDK and its default credential chain (environment, profile, SSO, instance
 * role). With an endpoint (MinIO, a test server) addressing is path-style, as Nix's own S3 store does.
 */
export class S3CacheStore implements CacheStore {
  readonly url: string;
  private readonly client: S3Client;

  constructor(private readonly location: S3CacheLocation) {
    this.url = location.url;
    this.client = new S3Client({
      region: location.region ?? process.env.AWS_REGION ?? "us-east-1",
      // An S3-compatible server (MinIO, Ceph, R2, a test server) may not take the SDK's newer default of checksums in
      // aws-chunked trailers on every upload (s3rver stores such a body as nothing): there, checksums only where S3
      // requires them, as before that default. Each NAR is still checked by the hosts against its narinfo.
      ...(location.endpoint !== undefined
        ? { endpoint: location.endpoint, forcePathStyle: true, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" } as const
        : {}),
      ...(location.profile !== undefined ? { profile: location.profile } : {}),
      maxAttempts: MAX_ATTEMPTS,
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
    });
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw this.explain(err, `looking up ${key}`);
    }
  }

  async get(key: string, maxBytes: number): Promise<Buffer | undefined> {
    try {
      const reply = await this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: key }));
      if ((reply.ContentLength ?? 0) > maxBytes) throw new Error(`${this.url}: ${key} is larger than ${maxBytes} bytes`);
      const bytes = Buffer.from(await reply.Body!.transformToByteArray());
      if (bytes.length > maxBytes) throw new Error(`${this.url}: ${key} is larger than ${maxBytes} bytes`);
      return bytes;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.explain(err, `reading ${key}`);
    }
  }

  async put(key: string, body: CacheBody, contentType: string): Promise<void> {
    try {
      if ("file" in body && body.size > PART_BYTES) {
        await new Upload({
          client: this.client,
          params: { Bucket: this.location.bucket, Key: key, Body: bodyStream(body), ContentType: contentType },
          partSize: PART_BYTES,
          queueSize: PARTS_AT_ONCE,
          leavePartsOnError: false,
        }).done();
      } else {
        await this.client.send(new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: key,
          Body: bodyStream(body),
          ContentType: contentType,
          ...("file" in body ? { ContentLength: body.size } : {}),
        }));
      }
    } catch (err) {
      throw this.explain(err, `uploading ${key}`);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private explain(err: unknown, doing: string): Error {
    const explained = explainAwsError(err, `${doing} in ${this.url}`, { region: this.location.region, endpoint: this.location.endpoint });
    const name = (err as Error).name;
    if (explained === err && (name === "NoSuchBucket" || name === "AccessDenied" || name === "Forbidden")) {
      return new Error(`${doing} in ${this.url} failed: ${name} (${(err as Error).message}): check the bucket's name and region and that ` +
        "your credentials may read and write it (s3:GetObject, s3:PutObject)");
    }
    return explained === err ? new Error(`${doing} in ${this.url} failed: ${(err as Error).message}`) : explained;
  }
}

function isNotFound(err: unknown): boolean {
  const error = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return error.name === "NotFound" || error.name === "NoSuchKey" || error.$metadata?.httpStatusCode === 404;
}
