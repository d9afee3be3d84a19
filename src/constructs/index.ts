export * from "./nixos-binary-cache";
export * from "./nixos-configuration-image";
export * from "./nixos-deployment";
export * from "./nixos-image";
export * from "./nixos-instance";
export * from "./nixos-key-pair";
export * from "./nixos-security-group";
export { HealthCheckFrom, type HealthCheck, type HttpHealthCheck } from "../spec/health-check";
