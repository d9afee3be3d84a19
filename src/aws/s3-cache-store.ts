import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client,
  UploadPartCommand, type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { setTimeout as sleep } from "node:timers/promises";
import { bodyRange, bodyStream, type CacheBody, type CacheStore } from "../nix/binary-cache/cache-store";
import { eachAtMost } from "../pool";
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
  /** For parts streamed from a file: the SDK cannot resend a stream it consumed, so each part is retried here. */
  private readonly partClient: S3Client;

  constructor(private readonly location: S3CacheLocation) {
    this.url = location.url;
    const config: S3ClientConfig = {
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
    };
    this.client = new S3Client(config);
    this.partClient = new S3Client({ ...config, maxAttempts: 1 });
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

  async put(key: string, body: CacheBody, contentType: string, metadata?: Readonly<Record<string, string>>): Promise<void> {
    try {
      // a body read in ranges goes in parts whatever its size: each part is retried by reading its range again
      if (!("text" in body) && (body.size > PART_BYTES || "readRange" in body)) {
        await this.putInParts(key, body, contentType, metadata);
      } else {
        await this.client.send(new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: key,
          Body: await bodyStream(body),
          ContentType: contentType,
          ...(metadata !== undefined ? { Metadata: { ...metadata } } : {}),
          ...("file" in body ? { ContentLength: body.size } : {}),
        }));
      }
    } catch (err) {
      throw this.explain(err, `uploading ${key}`);
    }
  }

  /**
   * A multipart upload whose parts are read from the body as they are sent (a ranged stream each, never buffered):
   * memory stays the same whatever the body's size. Each part is retried from its range on its own; on failure the
   * upload is aborted, so no parts are left behind.
   */
  private async putInParts(key: string, body: Exclude<CacheBody, { readonly text: string }>, contentType: string, metadata?: Readonly<Record<string, string>>): Promise<void> {
    const size = body.size;
    const Bucket = this.location.bucket;
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({
      Bucket, Key: key, ContentType: contentType, ...(metadata !== undefined ? { Metadata: { ...metadata } } : {}),
    }));
    const parts: Array<{ ETag: string | undefined; PartNumber: number }> = [];
    let failure: unknown;
    try {
      const numbers = Array.from({ length: Math.ceil(size / PART_BYTES) }, (_, i) => i + 1);
      await eachAtMost(PARTS_AT_ONCE, numbers, async (PartNumber) => {
        const start = (PartNumber - 1) * PART_BYTES;
        const length = Math.min(PART_BYTES, size - start);
        for (let attempt = 1; ; attempt++) {
          try {
            const reply = await this.partClient.send(new UploadPartCommand({
              Bucket, Key: key, UploadId, PartNumber, ContentLength: length, Body: await bodyRange(body, start, length),
            }));
            parts[PartNumber - 1] = { ETag: reply.ETag, PartNumber };
            return;
          } catch (err) {
            // the other parts finish or stop before the upload is aborted
            if (attempt >= MAX_ATTEMPTS || failure !== undefined) {
              failure ??= err;
              return;
            }
            await sleep(Math.min(20_000, 500 * 2 ** attempt));
          }
        }
      }, { stop: () => failure !== undefined });
      if (failure !== undefined) throw failure;
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  /** The object's user metadata (x-amz-meta-*, names in lower case), or undefined when there is no object. */
  async metadata(key: string): Promise<Record<string, string> | undefined> {
    try {
      return (await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: key }))).Metadata ?? {};
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.explain(err, `looking up ${key}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: key }));
    } catch (err) {
      throw this.explain(err, `deleting ${key}`);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.partClient.destroy();
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
