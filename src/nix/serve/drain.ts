import type { Writable } from "node:stream";

/** Where a wait for 'drain' can be cut short: the transfer failed elsewhere and no room will ever come. */
export interface DrainWait {
  abort?: (err: Error) => void;
}

/** Resolves on the stream's next 'drain', or rejects with what `wait.abort` is called with first. */
export function waitForDrain(stream: Writable, wait: DrainWait): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onDrain = () => {
      wait.abort = undefined;
      resolve();
    };
    wait.abort = (err) => {
      stream.off("drain", onDrain);
      wait.abort = undefined;
      reject(err);
    };
    stream.once("drain", onDrain);
  });
}
