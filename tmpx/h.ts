import { createServer } from "node:net";
import { Client } from "ssh2";
const server = createServer((s) => { s.write("SSH-2.0-OpenSSH_9.2\r\n"); setTimeout(() => s.destroy(), 50); }).listen(0, "127.0.0.1", () => {
  const port = (server.address() as any).port;
  const c = new Client();
  c.on("error", (e: any) => { console.log("error", e.message, e.level, e.code); server.close(); });
  c.on("close", () => console.log("close"));
  c.connect({ host: "127.0.0.1", port, username: "x", readyTimeout: 3000 });
});
const server2 = createServer((s) => { s.destroy(); }).listen(0, "127.0.0.1", () => {
  const port = (server2.address() as any).port;
  const c = new Client();
  c.on("error", (e: any) => { console.log("error2", e.message, e.level, e.code); server2.close(); });
  c.connect({ host: "127.0.0.1", port, username: "x", readyTimeout: 3000 });
});
