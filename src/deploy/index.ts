// The deploy engine's entry point, `cdktf-nixos/deploy`: kept apart from the constructs so that `cdktf synth` never
// loads ssh2 or the AWS SDK.
export { deploy } from "./deploy";
export { DEFAULT_SETTINGS, type ResolvedDeploymentSettings } from "../spec/settings";
export type { ActivationReport, DeployDependencies, DeployEvent, DeployRequest, DeployResult } from "./deploy";
export { defaultDependencies, type DefaultDependencyOptions } from "./default-dependencies";
export { planActivation, parseActivationState, type ActivationInput, type ActivationPlan, type ActivationState } from "./activation";
export { ACTIONS, type Action } from "../spec/goal";
export type { CopyOptions, Host, ReconnectOptions, RunOptions, RunResult } from "./host";
export type { TargetSystem } from "./inspection";
export type { JumpHost, TargetSpec } from "../spec/target";
export { deploymentManifest, type DeploymentSpec, type DeploymentManifest } from "../spec/manifest";
export * from "../errors";
export type { LocalSystem, SystemSource } from "../nix/system";
export type { CopyProgress, CopyReport } from "../nix/serve/copy";
export { findLatestNixosAmi, type AmiQuery, type NixosAmi } from "../aws/ami-lookup";
