// The construct library: what `cdktf synth` loads. The deploy engine (ssh2, the AWS SDK) is `cdktf-nixos/deploy`.
export * from "./constructs";
export { DEFAULT_NIXOS_RELEASE, NIXOS_AMI_OWNER } from "./aws/nixos-ami-names";
