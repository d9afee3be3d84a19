import { IamInstanceProfile } from "@cdktf/provider-aws/lib/iam-instance-profile";
import { IamRole } from "@cdktf/provider-aws/lib/iam-role";
import { IamRolePolicy } from "@cdktf/provider-aws/lib/iam-role-policy";
import { S3Bucket } from "@cdktf/provider-aws/lib/s3-bucket";
import { S3BucketLifecycleConfiguration } from "@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration";
import { S3BucketOwnershipControls } from "@cdktf/provider-aws/lib/s3-bucket-ownership-controls";
import { S3BucketPublicAccessBlock } from "@cdktf/provider-aws/lib/s3-bucket-public-access-block";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Testing, TerraformStack } from "cdktf";
import { afterAll, describe, expect, it } from "vitest";
import { NixosBinaryCache, NixosDeployment, NixosInstance, NixosKeyPair } from "../../src";
import { parseSigningKey } from "../../src/nix/binary-cache/signing-key";
import { PUBLIC, SECRET } from "../nix/binary-cache/test-key";

const dir = mkdtempSync(join(tmpdir(), "binary-cache-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const stack = () => new TerraformStack(Testing.app(), "fleet");

describe("NixosBinaryCache", () => {
  it("is a private bucket hosts read through an instance profile; its signing key is made here, 0600, and only the public half is synthesized", () => {
    const s = stack();
    const keyFile = join(dir, "keys", "cache.secret");
    const cache = new NixosBinaryCache(s, "Cache", { bucketName: "acme-nix-cache", region: "eu-central-1", signingKeyFile: keyFile, expireAfterDays: 90 });
    const secret = readFileSync(keyFile, "utf8");
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(cache.publicKey).toBe(parseSigningKey(secret, keyFile).publicKey);
    expect(cache.publicKey.startsWith("acme-nix-cache-1:")).toBe(true);
    expect([cache.url, cache.substituter]).toEqual(["s3://acme-nix-cache?region=eu-central-1", "s3://acme-nix-cache?region=eu-central-1"]);
    expect(cache.nixosArgs).toEqual({ binaryCache: { substituter: cache.substituter, publicKey: cache.publicKey } });
    const out = Testing.synth(s);
    expect(out).not.toContain(secret.split(":")[1]);
    expect(out).toHaveResourceWithProperties(S3Bucket, { bucket: "acme-nix-cache" });
    expect(out).toHaveResourceWithProperties(S3BucketPublicAccessBlock, { block_public_acls: true, block_public_policy: true, ignore_public_acls: true, restrict_public_buckets: true });
    expect(out).toHaveResourceWithProperties(S3BucketOwnershipControls, { rule: { object_ownership: "BucketOwnerEnforced" } });
    expect(out).toHaveResourceWithProperties(S3BucketLifecycleConfiguration, {
      rule: [
        expect.objectContaining({ id: "abort-unfinished-uploads", abort_incomplete_multipart_upload: [{ days_after_initiation: 1 }] }),
        expect.objectContaining({ id: "expire", expiration: [{ days: 90 }] }),
      ],
    });
    const policy = JSON.parse((JSON.parse(out).resource.aws_iam_role_policy as Record<string, { policy: string }>)[Object.keys(JSON.parse(out).resource.aws_iam_role_policy)[0]!]!.policy);
    expect(policy.Statement[0]).toEqual({ Effect: "Allow", Action: ["s3:GetObject"], Resource: "arn:aws:s3:::acme-nix-cache/*" });
    expect(out).toHaveResource(IamRole);
    expect(out).toHaveResource(IamRolePolicy);
    expect(out).toHaveResource(IamInstanceProfile);
  });

  it("uses an existing signing key and never replaces it", () => {
    const keyFile = join(dir, "existing.secret");
    writeFileSync(keyFile, SECRET, { mode: 0o600 });
    const cache = new NixosBinaryCache(stack(), "Cache", { bucketName: "acme-nix-cache", region: "eu-central-1", signingKeyFile: keyFile });
    expect(cache.publicKey).toBe(PUBLIC);
    expect(readFileSync(keyFile, "utf8")).toBe(SECRET);
    const notAKey = join(dir, "not-a-key");
    writeFileSync(notAKey, "hello\n");
    expect(() => new NixosBinaryCache(stack(), "Cache", { bucketName: "acme-nix-cache", region: "eu-central-1", signingKeyFile: notAKey })).toThrow(
      `fleet/Cache (NixosBinaryCache): signingKeyFile ${notAKey}: ${notAKey} is not a Nix binary cache secret key (NAME:BASE64); make one with ` +
        "nix-store --generate-binary-cache-key NAME secret.key public.key; it is never overwritten: move it away, or choose another signingKeyFile",
    );
    expect(readFileSync(notAKey, "utf8")).toBe("hello\n");
  });

  it.each<[string, unknown, string]>([
    ["a bucket name S3 refuses", { bucketName: "Acme_Cache", region: "eu-central-1" }, `bucketName "Acme_Cache" is not an S3 bucket name (3–63 lowercase letters, digits, dots and hyphens)`],
    ["a number as region (plain JavaScript)", { bucketName: "acme-cache", region: 1 }, "fleet/Cache (NixosBinaryCache): region must be a string, got the number 1"],
    ["a misspelled prop", { bucketName: "acme-cache", region: "eu-central-1", expireAfterDay: 3 }, "unknown prop expireAfterDay (misspelled?)"],
    ["days that are not whole", { bucketName: "acme-cache", region: "eu-central-1", expireAfterDays: 0.5 }, "expireAfterDays 0.5 is not a whole number of days of at least 1"],
  ])("refuses %s, naming the construct", (_what, props, message) => {
    expect(() => new NixosBinaryCache(stack(), "Cache", { signingKeyFile: join(dir, "k2"), ...(props as object) } as never)).toThrow(message);
  });

  it("fromUrl: an existing cache by URL and public key, checked", () => {
    const s = stack();
    const cache = NixosBinaryCache.fromUrl(s, "Cachix", "https://acme.cachix.org", PUBLIC, { pushCommand: "cachix push acme" });
    expect([cache.url, cache.substituter, cache.publicKey, cache.pushCommand]).toEqual(["https://acme.cachix.org", "https://acme.cachix.org", PUBLIC, "cachix push acme"]);
    expect(() => NixosBinaryCache.fromUrl(s, "Bad", "https://acme.cachix.org", "acme-1")).toThrow("fleet/Bad (NixosBinaryCache.fromUrl): 'acme-1' is not a Nix binary cache public key");
    expect(() => NixosBinaryCache.fromUrl(s, "Ftp", "ftp://cache", PUBLIC)).toThrow("url 'ftp://cache': ftp:// caches are not supported");
  });
});

describe("a binary cache on NixosDeployment and NixosInstance", () => {
  const configuration = join(dir, "web.nix");
  writeFileSync(configuration, "{ ... }: { }\n");

  it("the deployment's settings name the cache, its key file and public key; a cache it cannot upload to is refused", () => {
    const s = stack();
    const cache = NixosBinaryCache.fromUrl(s, "Cache", "s3://acme?region=eu-central-1", PUBLIC, { signingKeyFile: join(dir, "cache.secret"), substituter: "https://cache.acme.example" });
    const deployment = new NixosDeployment(s, "web", { host: "10.0.0.5", configuration, binaryCache: cache, buildHost: "builder@10.0.0.9" });
    expect(deployment.settings).toMatchObject({
      cache: "s3://acme?region=eu-central-1", cacheSubstituter: "https://cache.acme.example", cacheSigningKeyFile: join(dir, "cache.secret"), cachePublicKey: PUBLIC,
      cachePushCommand: undefined, buildHost: "builder@10.0.0.9",
    });
    const readOnly = NixosBinaryCache.fromUrl(s, "ReadOnly", "https://cache.example.com", PUBLIC);
    expect(() => new NixosDeployment(s, "db", { host: "10.0.0.6", configuration, binaryCache: readOnly })).toThrow(/fleet\/db \(NixosDeployment\): binaryCache: --cache https:\/\/cache.example.com: this tool uploads to s3:\/\/ and file:\/\/ caches/);
    expect(() => new NixosDeployment(s, "app", { host: "10.0.0.7", configuration, buildHost: "b@ild!" })).toThrow("buildHost 'b@ild!' is not [user@]host[:port]");
  });

  it("the instance gets the cache's instance profile", () => {
    const s = stack();
    const cache = new NixosBinaryCache(s, "Cache", { bucketName: "acme-nix-cache", region: "eu-central-1", signingKeyFile: join(dir, "instance.secret") });
    new NixosInstance(s, "web", { keyPair: NixosKeyPair.fromKeyPairName(s, "Ops", "ops"), binaryCache: cache });
    const instances = JSON.parse(Testing.synth(s)).resource.aws_instance as Record<string, { iam_instance_profile?: string }>;
    expect(Object.values(instances).map((i) => i.iam_instance_profile)).toEqual([expect.stringMatching(/^\$\{aws_iam_instance_profile\.Cache_InstanceProfile_[0-9A-F]{8}\.name\}$/)]);
  });
});
