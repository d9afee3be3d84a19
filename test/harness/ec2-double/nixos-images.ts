import { NIXOS_AMI_OWNER } from "../../../src/aws/nixos-ami-names";
import type { Image } from "./server";

/** A catalogue like the real one: several uploads per release and architecture, plus look-alikes that must lose. */
export const NIXOS_IMAGES: Image[] = [
  { imageId: "ami-0a0000000000000a1", name: "nixos/25.05.801.aaaaaaaaaaaa-x86_64-linux", ownerId: NIXOS_AMI_OWNER, architecture: "x86_64", creationDate: "2025-06-01T10:00:00.000Z" },
  { imageId: "ami-0a0000000000000a3", name: "nixos/25.05.999.cccccccccccc-x86_64-linux", ownerId: NIXOS_AMI_OWNER, architecture: "x86_64", creationDate: "2025-09-30T10:00:00.000Z" },
  { imageId: "ami-0a0000000000000a2", name: "nixos/25.05.900.bbbbbbbbbbbb-x86_64-linux", ownerId: NIXOS_AMI_OWNER, architecture: "x86_64", creationDate: "2025-08-15T10:00:00.000Z" },
  { imageId: "ami-0b0000000000000b1", name: "nixos/25.05.999.cccccccccccc-aarch64-linux", ownerId: NIXOS_AMI_OWNER, architecture: "arm64", creationDate: "2025-09-29T10:00:00.000Z" },
  { imageId: "ami-0c0000000000000c1", name: "nixos/24.11.700.dddddddddddd-x86_64-linux", ownerId: NIXOS_AMI_OWNER, architecture: "x86_64", creationDate: "2025-12-01T10:00:00.000Z" },
  { imageId: "ami-0d0000000000000d1", name: "nixos/25.05.999.eeeeeeeeeeee-x86_64-linux", ownerId: "111122223333", architecture: "x86_64", creationDate: "2026-01-01T10:00:00.000Z" },
  { imageId: "ami-0e0000000000000e1", name: "nixos/25.05.1000.ffffffffffff-x86_64-linux", ownerId: NIXOS_AMI_OWNER, architecture: "x86_64", creationDate: "2026-02-01T10:00:00.000Z", state: "pending" },
];

export const NEWEST_2505_X86_64 = "ami-0a0000000000000a3";
export const NEWEST_2505_AARCH64 = "ami-0b0000000000000b1";
