/**
 * What a deployment asks of switch-to-configuration, in nixos-rebuild's words, and every decision that follows from
 * it. The predicates live here and nowhere else (colmena's goal.rs).
 */
export type Action = "switch" | "boot" | "test" | "dry-activate";
export const ACTIONS: readonly Action[] = ["switch", "boot", "test", "dry-activate"];

/** switch and boot make a new generation of the system profile; test and dry-activate leave the profile alone. */
export function setsProfile(action: Action): boolean {
  return action === "switch" || action === "boot";
}

/** switch and test change the running system; boot only the next boot; dry-activate nothing. */
export function changesRunningSystem(action: Action): boolean {
  return action === "switch" || action === "test";
}

/** Only a change to the running system can lock us out, so only those are confirmed over a new connection. */
export function mayConfirm(action: Action): boolean {
  return changesRunningSystem(action);
}

/** dry-activate changes nothing, so there is nothing to roll back. */
export function mayRollBack(action: Action): boolean {
  return action !== "dry-activate";
}

/**
 * What must already point at the new system for the host to be up to date: switch — the running system and the boot
 * default; boot — the boot default; test — the running system. dry-activate only reports, so it is never up to date.
 */
export function upToDateRequires(action: Action): ReadonlyArray<"currentSystem" | "profileSystem"> | undefined {
  switch (action) {
    case "switch":
      return ["currentSystem", "profileSystem"];
    case "boot":
      return ["profileSystem"];
    case "test":
      return ["currentSystem"];
    case "dry-activate":
      return undefined;
  }
}

/** The host already is what the action would make it. */
export function isUpToDate(
  action: Action,
  host: { readonly currentSystem?: string; readonly profileSystem?: string },
  toplevel: string,
): boolean {
  const requires = upToDateRequires(action);
  return requires !== undefined && requires.every((what) => host[what] === toplevel);
}

/** Only switch and boot make generations, so only they prune old ones. */
export function mayPruneGenerations(action: Action): boolean {
  return setsProfile(action);
}
