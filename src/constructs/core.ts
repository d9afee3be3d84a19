/**
 * The one module of cdktf-nixos that imports the CDK core and the AWS provider bindings. The same sources make two
 * packages: cdktf-nixos (this file as written: cdktf 0.21, @cdktf/provider-aws 20) and cdktn-nixos (CDK Terrain:
 * `npm run build:cdktn` compiles the sources against cdktn and @cdktn/provider-aws and rewrites only this module's
 * specifiers; scripts/build-cdktn.ts refuses a build in which any other module names cdktf). Every construct imports
 * from here, never from the packages themselves (eslint enforces it).
 */
export {
  Annotations,
  DataResource,
  DefaultTokenResolver,
  Lazy,
  StringConcat,
  TerraformStack,
  Token,
  Tokenization,
  type ISynthesisSession,
} from "cdktf";
// The provider's resources one module each, as its own docs import them: its index loads every AWS resource.
export { Ami } from "@cdktf/provider-aws/lib/ami";
export { DataAwsAmi } from "@cdktf/provider-aws/lib/data-aws-ami";
export { DataAwsRegion } from "@cdktf/provider-aws/lib/data-aws-region";
export { EbsSnapshotImport } from "@cdktf/provider-aws/lib/ebs-snapshot-import";
export { IamInstanceProfile } from "@cdktf/provider-aws/lib/iam-instance-profile";
export { IamRole } from "@cdktf/provider-aws/lib/iam-role";
export { IamRolePolicy } from "@cdktf/provider-aws/lib/iam-role-policy";
export { Instance } from "@cdktf/provider-aws/lib/instance";
export { KeyPair } from "@cdktf/provider-aws/lib/key-pair";
export { AwsProvider } from "@cdktf/provider-aws/lib/provider";
export { S3Bucket } from "@cdktf/provider-aws/lib/s3-bucket";
export { S3BucketLifecycleConfiguration } from "@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration";
export { S3BucketOwnershipControls } from "@cdktf/provider-aws/lib/s3-bucket-ownership-controls";
export { S3BucketPublicAccessBlock } from "@cdktf/provider-aws/lib/s3-bucket-public-access-block";
export { SecurityGroup, type SecurityGroupIngress } from "@cdktf/provider-aws/lib/security-group";
