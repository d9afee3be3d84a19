import { privateKeyFileProblem } from "../../spec/private-key-file";
import { readFile, stat } from "node:fs/promises";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { constants } from "node:os";
import { Client, utils, type ClientChannel, type ConnectConfig, type ServerHostKeyAlgorithm } from "ssh2";
import { ConnectError, TransportError } from "../../errors";
import type { RemoteProcess } from "../../nix/remote-shell";
import { KnownHostsFile, checkHostKey, fingerprint, instanceOf, keyTypeOf, knownHostsName, knownKeyTypes, type HostKeyVerdict, type KnownHostEntry } from "./known-hosts";
import { decideHostKey, type HostKeyDecision } from "./host-key-policy";

export interface SshEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: string;
}

export interface SshOptions extends SshEndpoint {
  /** Private key file; without it, the ssh-agent at SSH_AUTH_SOCK. */
  readonly privateKeyFile?: string;
  readonly knownHostsFile: string;
  /** Record the key of a host known_hosts does not list (OpenSSH's StrictHostKeyChecking=accept-new). */
  readonly acceptNewHostKey?: boolean;
  /**
   * The EC2 instance whose console vouches for host keys (see decideHostKey), with the fingerprints its console
   * listed once they have been read; until then a host that needs them fails with ConsoleNeededError.
   */
  readonly ec2Console?: { readonly instanceId: string; readonly vouched?: readonly string[] };
  /** Hears what the connection wrote to known_hosts (a key recorded, or one replaced), in a sentence. */
  readonly onKnownHostsChanged?: (message: string) => void;
  readonly jumpHost?: SshEndpoint;
  /** zlib on the whole connection (ssh -C): caps the copy at ~25 MiB/s; never on fast links. */
  readonly sshCompression?: boolean;
  /**
   * How long to keep retrying while the host is unreachable (booting), in milliseconds.
   * @default 0 - one attempt
   */
  readonly retryForMs?: number;
  /** @default 15000 */
  readonly keepaliveIntervalMs?: number;
}

/** Exponential backoff from 0.5 s doubling to 8 s: what to wait after failed attempt `n` (0-based). */
export function backoffDelayMs(attempt: number): number {
  return Math.min(500 * 2 ** attempt, 8000);
}

const signals = constants.signals;
const CLOSE_GRACE_MS = 1000;

/** An authenticated SSH connection to a host whose key was verified. */

export class SshConnection {
  private constructor(
    private readonly client: Client,
    private readonly jump: Client | undefined,
    readonly name: string,
    private readonly socket?: Socket,
  ) {}

  /** Connects, retrying while the host is unreachable; never retries a refused host key or authentication. */
  static async open(options: SshOptions): Promise<SshConnection> {
    const deadline = Date.now() + (options.retryForMs ?? 0);
    for (let attempt = 0; ; attempt++) {
      try {
        return await SshConnection.openOnce(options);
      } catch (err) {
        if (!(err instanceof RetryableConnectError) || Date.now() + backoffDelayMs(attempt) > deadline) {
          throw err instanceof RetryableConnectError ? err.final(attempt + 1) : err;
        }
        await new Promise((resolve) => setTimeout(resolve, backoffDelayMs(attempt)));
      }
    }
  }

  private static async openOnce(options: SshOptions): Promise<SshConnection> {
    const knownHosts = await KnownHostsFile.load(options.knownHostsFile);
    const privateKey = options.privateKeyFile ? await readPrivateKey(options.privateKeyFile) : undefined;
    let jump: Client | undefined;
    let sock: ClientChannel | Socket | undefined;
    if (options.jumpHost) {
      // The bastion only forwards the inner connection's bytes; compressing there too gains nothing, and ssh2 then
      // fails on teardown ("Invalid Zlib instance").
      jump = await connectClient(options.jumpHost, knownHosts, { ...options, sshCompression: false }, privateKey);
      sock = await new Promise<ClientChannel>((resolve, reject) =>
        jump!.forwardOut("127.0.0.1", 0, options.host, options.port, (err, channel) => (err ? reject(
          new RetryableConnectError(`${describe(options)} via ${describe(options.jumpHost!)}: ${err.message}`),
        ) : resolve(channel))),
      );
    }
    sock ??= gatheringSocket(options.host, options.port);
    try {
      const client = await connectClient(options, knownHosts, options, privateKey, sock);
      return new SshConnection(client, jump, describe(options), sock instanceof Socket ? sock : undefined);
    } catch (err) {
      jump?.end();
      throw err;
    }
  }

  /**
   * Runs a command without a PTY and collects its output; `stdin` is streamed into it. Resolves with the exit code of
   * a command that ran (128 + n when a signal ended it); rejects with a TransportError when the connection failed
   * before the command reported an exit status, when it printed more than `maxOutputBytes` on one stream, or when it
   * did not finish within `timeoutMs` (the channel is then closed: a host cannot hold the deployer or fill its memory).
   */
  async exec(command: string, stdin?: Buffer, limits: ExecLimits = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const maxOutputBytes = limits.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const channel = await this.openChannel(command);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let stopped: string | undefined;
    let abandon: () => void = () => undefined;
    // a command that neither reads nor writes (sleep) keeps sshd from answering the channel's close until it exits:
    // a stopped command is not waited for (closing the connection ends it)
    const abandoned = new Promise<null>((resolve) => (abandon = () => resolve(null)));
    const stop = (why: string) => {
      stopped ??= why;
      channel.abort();
      abandon();
    };
    const collect = (into: Buffer[], what: string) => {
      let size = 0;
      return (c: Buffer) => {
        size += c.length;
        if (size > maxOutputBytes) stop(`printed more than ${maxOutputBytes / 1024} KiB on ${what}, more than it can mean`);
        else into.push(c);
      };
    };
    channel.stdout.on("data", collect(stdout, "stdout"));
    channel.stderr.on("data", collect(stderr, "stderr"));
    channel.stdin.on("error", () => undefined);
    channel.stdin.end(stdin);
    const timer = limits.timeoutMs === undefined ? undefined : setTimeout(() => stop(`gave no answer within ${limits.timeoutMs! / 1000} s`), limits.timeoutMs);
    timer?.unref();
    const exitCode = await Promise.race([channel.exited, abandoned]).finally(() => clearTimeout(timer));
    if (stopped !== undefined) throw new TransportError(`'${shortCommand(command)}' on ${this.name} ${stopped}`);
    if (exitCode === null) {
      throw new TransportError(`the connection to ${this.name} was lost before '${command}' reported an exit status`);
    }
    return {
      exitCode,
      stdout: Buffer.concat(stdout).toString("utf8"),
      stderr: Buffer.concat(stderr).toString("utf8"),
    };
  }

  /** Bytes written to the TCP socket so far (0 through a jump host, whose channel carries them). */
  get socketBytesWritten(): number {
    return this.socket?.bytesWritten ?? 0;
  }

  /** A TCP connection the host opens (direct-tcpip); AllowTcpForwarding must allow it (OpenSSH's and NixOS's default). */
  forwardTcp(address: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const opened = (err: Error | undefined, channel: ClientChannel) => {
        if (err) reject(new TransportError(`${this.name} could not open a TCP connection to ${address}:${port}: ${err.message}`, { cause: err }));
        else resolve(channel);
      };
      try {
        this.client.forwardOut("127.0.0.1", 0, address, port, opened);
      } catch (err) {
        reject(new TransportError(`${this.name} could not open a TCP connection to ${address}:${port}: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  /** Starts a command and hands over its streams (for the serve protocol). */
  openChannel(command: string): Promise<RemoteProcess> {
    return new Promise((resolve, reject) => {
      const started = (err: Error | undefined, channel: ClientChannel) => {
        if (err) {
          reject(new TransportError(`could not start '${command}' on ${this.name}: ${err.message}`, { cause: err }));
          return;
        }
        let exitCode: number | null = null;
        channel.on("exit", (code: number | null, signal?: string) => {
          // ssh2 names the signal "SIGTERM"; shells report such a death as 128 + its number
          exitCode = typeof code === "number" ? code : signal !== undefined ? 128 + (signals[signal as NodeJS.Signals] ?? 0) : null;
        });
        // A dropped connection ends the channel with an error first; its 'close' then resolves with no status.
        channel.on("error", () => undefined);
        const exited = new Promise<number | null>((done) => channel.on("close", () => done(exitCode)));
        resolve({ stdin: channel, stdout: channel, stderr: channel.stderr, exited, close: () => channel.end(), abort: () => channel.close() });
      };
      try {
        this.client.exec(command, started);
      } catch (err) {
        // ssh2 throws synchronously once the connection is gone ("Not connected").
        reject(new TransportError(`could not start '${command}' on ${this.name}: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  /**
   * Ends the connection politely, and destroys the socket if that has not happened within a second: a host that
   * stopped answering leaves unsent data in the socket, which would keep the process alive for minutes of TCP
   * retransmissions after the deployment has reported.
   */
  close(): void {
    for (const client of [this.client, this.jump]) {
      if (client === undefined) continue;
      client.end();
      setTimeout(() => client.destroy(), CLOSE_GRACE_MS).unref();
    }
  }
}

/** What one command's output may be at most, unless the caller knows better: more is a host talking nonsense. */
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

export interface ExecLimits {
  /** Stop the command and fail when it has not finished by then. @default - no limit */
  readonly timeoutMs?: number;
  /** Stop the command and fail when it prints more than this on stdout or stderr. @default DEFAULT_MAX_OUTPUT_BYTES */
  readonly maxOutputBytes?: number;
}

/** A command as messages show it: its first line, at most 80 characters. */
function shortCommand(command: string): string {
  const first = command.split("\n")[0];
  return first.length > 80 || first !== command ? `${first.slice(0, 77)}...` : first;
}

/** The host offered another key than known_hosts records for it; nothing was sent to it. */
export class HostKeyMismatchError extends ConnectError {
  constructor(
    /** The name the host is recorded under (`host` or `[host]:port`). */
    readonly knownHostsName: string,
    readonly offered: Buffer,
    readonly expected: readonly KnownHostEntry[],
    message: string,
    details: ConstructorParameters<typeof ConnectError>[1],
  ) {
    super(message, details);
  }
}

/** Whether the host key can be trusted depends on the EC2 console's fingerprints, which have not been read yet. */
export class ConsoleNeededError extends ConnectError {}

/** Something accepted the TCP connection but did not speak SSH to the end of the handshake. */
const NOT_SSH_HINT = "something accepted the connection but did not complete an SSH handshake: check the port (--target-port / " +
  "port), a firewall or load balancer in between, and that sshd runs on the host";

class RetryableConnectError extends ConnectError {
  final(attempts: number): ConnectError {
    return new ConnectError(attempts > 1 ? `${this.message} (gave up after ${attempts} attempts)` : this.message, {
      hint: this.hint ?? "check that the host is up and reachable on that port; --connect-timeout waits longer for a booting host",
    });
  }
}

function describe(endpoint: SshEndpoint): string {
  return `${endpoint.user}@${endpoint.host}:${endpoint.port}`;
}

async function readPrivateKey(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new ConnectError(`cannot read the SSH private key ${file}: ${(err as Error).message}`, {
      hint: "pass --ssh-key with a readable private key file, or leave it out to use ssh-agent (SSH_AUTH_SOCK)",
    });
  }
}

/**
 * What is wrong with how a deployment would log in, found before anything is built or contacted: a private key that
 * cannot be read or needs a passphrase, or (without one) an ssh-agent that is not there. Undefined when it looks fine.
 */
export async function loginProblem(privateKeyFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (privateKeyFile !== undefined) {
    const problem = privateKeyFileProblem(privateKeyFile);
    if (problem !== undefined) return `the SSH private key ${privateKeyFile} ${problem}`;
    let key: Buffer;
    try {
      key = await readFile(privateKeyFile);
    } catch (err) {
      return `the SSH private key ${privateKeyFile} cannot be read (${(err as Error).message})`;
    }
    const parsed = utils.parseKey(key);
    if (parsed instanceof Error) {
      return /Encrypted/.test(parsed.message)
        ? `the SSH private key ${privateKeyFile} is protected by a passphrase, which cdktf-nixos cannot ask for: load it into ssh-agent ` +
          `(ssh-add ${privateKeyFile}) and leave out the key file`
        : `${privateKeyFile} is not an SSH private key ssh2 can read (${parsed.message}); pass an OpenSSH or PEM private key`;
    }
    return undefined;
  }
  const socket = env.SSH_AUTH_SOCK;
  if (socket === undefined || socket === "") {
    return "no SSH private key given and SSH_AUTH_SOCK is not set: start ssh-agent and add a key (ssh-add), or give the private key file";
  }
  const info = await stat(socket).catch(() => undefined);
  if (info === undefined || !info.isSocket()) {
    return `SSH_AUTH_SOCK is ${socket}, which ${info === undefined ? "does not exist" : "is not a socket"} (is ssh-agent still running?); ` +
      "start ssh-agent and add a key, or give the private key file";
  }
  return undefined;
}

const RETRYABLE = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "ECONNRESET", "EAI_AGAIN"]);

function connectClient(
  endpoint: SshEndpoint,
  knownHosts: KnownHostsFile,
  options: SshOptions,
  privateKey: Buffer | undefined,
  sock?: ClientChannel | Socket,
): Promise<Client> {
  const names = [knownHostsName(endpoint.host, endpoint.port)];
  const preferredTypes = knownKeyTypes(knownHosts.entries, names);
  let hostKeyProblem: ConnectError | undefined;
  let record: { key: Buffer; decision: Extract<HostKeyDecision, { kind: "trust-and-record" | "replace" }> } | undefined;

  const config: ConnectConfig = {
    host: endpoint.host,
    port: endpoint.port,
    username: endpoint.user,
    sock: sock ?? gatheringSocket(endpoint.host, endpoint.port),
    privateKey,
    agent: privateKey ? undefined : process.env.SSH_AUTH_SOCK,
    readyTimeout: 20_000,
    keepaliveInterval: options.keepaliveIntervalMs ?? 15_000,
    algorithms: {
      // native AES-GCM first: the copy is CPU-bound and ssh2 does these through node's OpenSSL
      cipher: ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr", "chacha20-poly1305@openssh.com"],
      ...(preferredTypes.length > 0 ? { serverHostKey: hostKeyAlgorithms(preferredTypes) } : {}),
      ...(options.sshCompression ? { compress: ["zlib@openssh.com", "zlib", "none"] } : {}),
    },
    hostVerifier: (key: Buffer) => {
      const verdict = checkHostKey(knownHosts.entries, names, key);
      const decision = decideHostKey(verdict, { offered: fingerprint(key), acceptNewHostKey: options.acceptNewHostKey === true, ec2Console: options.ec2Console });
      switch (decision.kind) {
        case "trust":
          return true;
        case "trust-and-record":
        case "replace":
          record = { key, decision };
          return true;
        case "read-console":
          hostKeyProblem = new ConsoleNeededError(`the host key of ${describe(endpoint)} needs the console of ${options.ec2Console?.instanceId} to be trusted`);
          return false;
        case "refuse":
          hostKeyProblem = refusal(verdict, decision.why, key);
          return false;
      }
    },
  };

  /** The message of a refused host key, for the verdict known_hosts gave. */
  const refusal = (verdict: HostKeyVerdict, why: Extract<HostKeyDecision, { kind: "refuse" }>["why"], key: Buffer): ConnectError => {
    if (verdict.kind === "unreadable") {
      return new ConnectError(
        `${knownHosts.path} line${verdict.entries.length > 1 ? "s" : ""} ${verdict.entries.map((e) => e.line).join(", ")} for ` +
          `${describe(endpoint)} cannot be read (the key is not a valid base64 ${verdict.entries[0].keyType} key), so the host key ` +
          "cannot be checked",
        { hint: `fix or remove ${verdict.entries.length > 1 ? "those lines" : "that line"} (ssh-keygen -R ${names[0]} -f ${knownHosts.path}); nothing was run on the host` },
      );
    }
    if (verdict.kind === "revoked") {
      return new ConnectError(`the host key of ${describe(endpoint)} (${fingerprint(key)}) is marked @revoked in ${knownHosts.path} line ${verdict.entry.line}`);
    }
    const vouched = options.ec2Console?.vouched ?? [];
    if (verdict.kind === "mismatch") {
      const mismatch = `HOST KEY MISMATCH for ${describe(endpoint)}: it offered ${keyTypeOf(key)} ${fingerprint(key)}, ` +
        `but ${knownHosts.path} expects ${verdict.expected.map((e) => `${e.keyType} ${fingerprint(e.key)} (line ${e.line})`).join(", ")}`;
      if (why === "not-vouched") {
        return new ConnectError(`${mismatch}; the console of ${options.ec2Console?.instanceId} does not vouch for it either (it lists ${vouched.join(", ")})`, {
          hint: "someone may be intercepting the connection; nothing was run on the host",
        });
      }
      return new HostKeyMismatchError(names[0], key, verdict.expected, mismatch, {
        hint: "someone may be impersonating the host, or it was rebuilt. If you know it was rebuilt, remove the " +
          `old entry (ssh-keygen -R ${names[0]} -f ${knownHosts.path}) and verify the new key out of band. Nothing was run on it.`,
      });
    }
    if (why === "not-vouched") {
      return new ConnectError(
        `the host key of ${describe(endpoint)} (${fingerprint(key)}) is not one of the fingerprints the instance reported (${vouched.join(", ")})`,
        { hint: "someone may be intercepting the connection; nothing was run on the host" },
      );
    }
    return new ConnectError(`${describe(endpoint)} is not in ${knownHosts.path} (it offered ${keyTypeOf(key)} ${fingerprint(key)})`, {
      hint: "add its key to the known_hosts file (ssh-keyscan output verified out of band), or pass " +
        "--accept-new-host-key to trust and record it on first use",
    });
  };

  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    client.once("ready", async () => {
      settled = true;
      try {
        if (record?.decision.kind === "trust-and-record") {
          await knownHosts.add(names[0], record.key, record.decision.comment);
          // a key recorded without a word would hide that the known_hosts file changed
          if (options.ec2Console !== undefined) {
            options.onKnownHostsChanged?.(`${names[0]} was not in ${knownHosts.path}: recorded the host key it offered, which the console of ${options.ec2Console.instanceId} vouches for`);
          }
        } else if (record?.decision.kind === "replace") {
          const remove = record.decision.remove;
          await knownHosts.rewrite((entry) => remove.some((e) => e.hosts === entry.hosts && e.key.equals(entry.key)), {
            name: names[0], key: record.key, comment: record.decision.comment,
          });
          const owners = [...new Set(remove.map(instanceOf))].join(", ");
          options.onKnownHostsChanged?.(`${names[0]} now answers with ${fingerprint(record.key)}, which the console of ${options.ec2Console?.instanceId} ` +
            `vouches for; replaced the key recorded for ${owners} (an instance no longer at that address) in ${knownHosts.path}`);
        }
        resolve(client);
      } catch (err) {
        client.end();
        reject(new ConnectError(`could not record the host key in ${knownHosts.path}: ${(err as Error).message}`));
      }
    });
    client.on("error", (err: Error & { level?: string; code?: string }) => {
      if (settled) return;
      settled = true;
      client.end();
      if (hostKeyProblem) reject(hostKeyProblem);
      else if (err.level === "client-authentication") {
        reject(new ConnectError(`${describe(endpoint)} refused authentication as ${endpoint.user}`, {
          hint: privateKey
            ? `check that the public key of ${options.privateKeyFile} is in ${endpoint.user}'s authorized_keys on the host`
            : "no --ssh-key given and ssh-agent offered no accepted key (is SSH_AUTH_SOCK set?)",
        }));
      } else if (err.message.includes("Cannot parse privateKey") || err.message.includes("Encrypted")) {
        reject(new ConnectError(`cannot use the private key ${options.privateKeyFile}: ${err.message}`, {
          hint: "for a passphrase-protected key, load it into ssh-agent and leave out --ssh-key",
        }));
      } else if ((err.code && RETRYABLE.has(err.code)) || err.level === "client-timeout" || err.level === "client-socket" ||
        err.message.includes("Connection lost before handshake")) {
        // a host still booting (or an sshd restarting) may accept and drop connections before it speaks SSH
        const handshake = err.message.includes("handshake");
        reject(new RetryableConnectError(`cannot reach ${describe(endpoint)}: ${err.message}`, handshake ? { hint: NOT_SSH_HINT } : undefined));
      } else if (/no matching host key format/.test(err.message) && preferredTypes.length > 0) {
        // we asked only for the key types known_hosts has for this host (as OpenSSH does), and it offers none of them
        reject(new ConnectError(
          `${describe(endpoint)} offers no host key of the type${preferredTypes.length > 1 ? "s" : ""} ${knownHosts.path} has for it ` +
            `(${preferredTypes.join(", ")})`, {
            hint: "it may have been rebuilt with new keys, or someone may be impersonating it. If you know it was rebuilt, remove the old " +
              `entry (ssh-keygen -R ${names[0]} -f ${knownHosts.path}) and verify the new key out of band. Nothing was run on it.`,
          }));
      } else {
        reject(new ConnectError(`SSH connection to ${describe(endpoint)} failed: ${err.message}`));
      }
    });
    // ssh2 reports a connection the host closes after its banner with 'close' alone, no 'error'
    client.on("close", () => {
      if (settled) return;
      settled = true;
      reject(hostKeyProblem ?? new RetryableConnectError(`${describe(endpoint)} closed the connection during the SSH handshake`, { hint: NOT_SSH_HINT }));
    });
    try {
      client.connect(config);
      // ssh2 counts a keepalive as answered only by its reply; OpenSSH by any message from the host. On a saturated
      // uplink (a push to many hosts from a laptop) the reply waits behind megabytes of upload while the host keeps
      // sending window adjustments and output, and ssh2 would drop a connection that is working. Anything the host
      // sends restarts the count, as in OpenSSH (ssh2 keeps that restart as _resetKA, set by connect()).
      const resetKeepalive = (client as unknown as { _resetKA?: () => void })._resetKA;
      if (resetKeepalive !== undefined) config.sock!.on("data", () => resetKeepalive());
    } catch (err) {
      settled = true;
      reject(new ConnectError(`cannot connect to ${describe(endpoint)}: ${(err as Error).message}`, {
        hint: privateKey ? `is ${options.privateKeyFile} an unencrypted OpenSSH private key?` : undefined,
      }));
    }
  });
}

/**
 * A TCP connection that hands the kernel every write of one event-loop turn at once (one writev): ssh2 writes each
 * 32 KiB packet of a channel separately, and on a fast link those system calls were a quarter of the client's CPU.
 * (Installed after connect(): net.Socket's connect() resets `write` to its own, so a subclass override is lost.)
 */
function gatheringSocket(host: string, port: number): Socket {
  const socket = new Socket().connect({ host, port });
  const write = socket.write;
  let gathering = false;
  socket.write = ((...args: Parameters<Socket["write"]>) => {
    if (!gathering) {
      gathering = true;
      socket.cork();
      process.nextTick(() => {
        gathering = false;
        socket.uncork();
      });
    }
    return write.apply(socket, args);
  }) as Socket["write"];
  return socket;
}

/** Host key algorithms for the recorded key types, so the host offers the key we know. */
function hostKeyAlgorithms(types: readonly string[]): ServerHostKeyAlgorithm[] {
  return types.flatMap((type) => (type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type])) as ServerHostKeyAlgorithm[];
}
