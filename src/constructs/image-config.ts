import type { Construct } from "constructs";
import type { NixosArchitecture } from "../aws/nixos-ami-names";

/** What an image resolves to inside a stack. */
export interface NixosImageConfig {
  /** The AMI ID (a token for looked-up images). */
  readonly imageId: string;
  /** The image's architecture, when known at synth time. */
  readonly architecture?: NixosArchitecture;
}

/**
 * A NixOS machine image. Bound lazily to the scope that uses it, like aws-cdk-lib's IMachineImage. (Its own module,
 * so NixosImage's factories and the images they make both name it without importing each other.)
 */
export interface INixosImage {
  bind(scope: Construct): NixosImageConfig;
}
