// One copy by cdktf-nixos in a process of its own, so its time and peak memory are its alone.
// usage: node bench/copy-once.cjs HOST PORT KEY KNOWN_HOSTS STORE_PATH [COMPRESS]
// prints one JSON line: { inProcessMs, pathsCopied, bytesSent, wireBytes, socketBytes, transport, peakRssMiB }
// (inProcessMs: from connecting to the end, without Node's start-up and module loading)
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const lib = join(__dirname, "..", "lib");
const { SshHost } = require(join(lib, "deploy", "ssh", "ssh-host.js"));
const { LocalStore } = require(join(lib, "nix", "local-store.js"));

async function main() {
  const [host, port, key, knownHosts, path, compress] = process.argv.slice(2);
  const started = process.hrtime.bigint();
  const target = await SshHost.connect({ host, port: Number(port), user: "root", privateKeyFile: key, knownHostsFile: knownHosts });
  const store = await LocalStore.open();
  const report = await target.copyClosure(store, [path], { compress: compress ?? "auto" });
  const socketBytes = target.socketBytesWritten;
  await store.close();
  await target.close();
  const inProcessMs = Number(process.hrtime.bigint() - started) / 1e6;
  const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  process.stdout.write(`${JSON.stringify({
    inProcessMs,
    pathsCopied: report.pathsCopied,
    bytesSent: report.bytesSent,
    wireBytes: report.wireBytes,
    socketBytes,
    transport: report.transport,
    peakRssMiB: peak ? Number(peak[1]) / 1024 : null,
  })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exitCode = 1;
});
