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
 * The host already is what the action would make it: switch — running and booting `toplevel`; boot — booting it;
 * test — running it. dry-activate is never "up to date": it only reports, so it always runs.
 */
export function isUpToDate(
  action: Action,
  host: { readonly currentSystem?: string; readonly profileSystem?: string },
  toplevel: string,
): boolean {
  switch (action) {
    case "switch":
      return host.currentSystem === toplevel && host.profileSystem === toplevel;
    case "boot":
      return host.profileSystem === toplevel;
    case "test":
      return host.currentSystem === toplevel;
    case "dry-activate":
      return false;
  }
}

/** Only switch and boot make generations, so only they prune old ones. */
export function mayPruneGenerations(action: Action): boolean {
  return setsProfile(action);
}
