import { join } from "node:path";
import type { TargetHost } from "./target-hosts";

const STAND_IN = join(__dirname, "systemd-run-stand-in.sh");

/**
 * Makes a target look like a systemd host to the deploy engine (`/run/systemd/system` exists, `systemd-run` is on
 * the PATH) with the stand-in script, so the systemd path's command line runs end to end. Only inside the target's
 * own mount namespace: a tmpfs over /usr/local/sbin there, never the machine's.
 */
export async function installSystemdRunStandIn(target: TargetHost): Promise<() => Promise<void>> {
  const result = await target.exec(
    "mkdir -p /run/systemd/system && mount -t tmpfs -o size=1m cdktfnx-systemd-run /usr/local/sbin && " +
      `cp ${STAND_IN} /usr/local/sbin/systemd-run && chmod 0755 /usr/local/sbin/systemd-run`,
  );
  if (result.exitCode !== 0) throw new Error(`installing the systemd-run stand-in on ${target.name} failed: ${result.stderr}`);
  return async () => {
    await target.exec("umount /usr/local/sbin; rm -rf /run/systemd");
  };
}
