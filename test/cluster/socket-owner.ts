import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/**
 * Which of `pids` holds the server end of the TCP connection from local port
 * `clientPort` to `serverPort`, read from /proc (Linux): the connection's
 * socket inode from /proc/net/tcp{,6}, then the process with that inode open.
 */
export function socketOwner(
  serverPort: number,
  clientPort: number,
  pids: readonly number[],
): number | undefined {
  const inode = serverSideInode(serverPort, clientPort);
  if (inode === undefined) return undefined;
  const link = `socket:[${inode}]`;
  return pids.find((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === link;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

function serverSideInode(
  serverPort: number,
  clientPort: number,
): string | undefined {
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = Number.parseInt(f[1]?.split(":")[1] ?? "", 16);
      const remote = Number.parseInt(f[2]?.split(":")[1] ?? "", 16);
      if (local === serverPort && remote === clientPort) return f[9];
    }
  }
  return undefined;
}
