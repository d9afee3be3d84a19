// The deploy engine's entry point, `cdktf-nixos/deploy`: kept apart from the constructs so that `cdktf synth` never
// loads ssh2 or the AWS SDK. One host (`deploy`) and a stack's fleet (`preparePush` then `push`, what the CLI's push
// command calls) are both here.
export { deploy } from "./deploy/deploy";
export { DEFAULT_SETTINGS, type ResolvedDeploymentSettings } from "./spec/settings";
export type { ActivationReport, DeployDependencies, DeployEvent, DeployRequest, DeployResult } from "./deploy/deploy";
export { defaultDependencies, type DefaultDependencyOptions } from "./deploy/default-dependencies";
export { planActivation, type ActivationInput, type ActivationPlan } from "./deploy/activation";
export { parseActivationState, renderActivationState, STATE_FILES, type ActivationState, type ActivationStatus } from "./deploy/activation-state";
export { interpretActivation, type ActivationVerdict } from "./deploy/interpret-activation";
export { ACTIONS, type Action } from "./spec/goal";
export type { CopyOptions, Host, ReconnectOptions, RunOptions, RunResult } from "./deploy/host";
export type { TargetSystem } from "./deploy/inspection";
export type { JumpHost, TargetSpec } from "./spec/target";
export { deploymentManifest, type DeploymentSpec, type DeploymentManifest } from "./spec/manifest";
export * from "./errors";
export type { LocalSystem, SystemSource } from "./nix/system";
export type { CopyProgress, CopyReport } from "./nix/serve/copy";
export { findLatestNixosAmi, type AmiQuery, type NixosAmi } from "./aws/ami-lookup";
export { preparePush, push, planPush, type PreparedPush, type PushOptions, type PushSettings, type PushReport, type PushEvent, type HostOutcome, type PushDependencies } from "./fleet/push";
export { deployRequestOf, type AppliedValues, type HostDeployRequest, type MappedDeployment } from "./spec/request";
export { CONSTRUCT_DEFAULTS, type SettingOverrides } from "./spec/settings";
// operating a fleet after a rollout: waves, health checks, status, rollback, exec
export { planWaves, waveCapacity, parseBatchSize, type WaveOptions, type BatchSize } from "./fleet/waves";
export { HealthCheckFrom, resolveHealthCheck, type HealthCheck, type ResolvedHealthCheck } from "./spec/health-check";
export { runHealthChecks, healthPlanOf, type HealthPlan } from "./deploy/health";
export { rollbackHost, chooseRollback, type Generation } from "./deploy/rollback";
export { fleetStatus, classifyHost, STATUS_EXIT_CODES, type StatusReport, type HostStatusReport, type FleetHostState, type LastActivation } from "./fleet/status";
export { execOnHosts, EXEC_EXIT_CODES, type ExecReport, type ExecOutcome } from "./fleet/exec";
export { rollbackFleet } from "./fleet/rollback-hosts";
