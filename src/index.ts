// Public API of the cdktf-nixos construct library and deploy engine.
export * from "./constructs";
export { findLatestNixosAmi, type AmiQuery, type NixosAmi } from "./aws/ami-lookup";
export { DEFAULT_NIXOS_RELEASE, NIXOS_AMI_OWNER } from "./aws/nixos-ami-names";
export { deploy, type DeployRequest, type DeployResult, type DeployEvent, type DeployDependencies } from "./deploy/deploy";
export { defaultDependencies } from "./deploy/default-dependencies";
export * from "./deploy/errors";
export type { Action, Host, TargetSystem } from "./deploy/host";
export type { SystemSource, TargetSpec } from "./deploy/plan";
