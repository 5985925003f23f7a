/**
 * Which files the scrubber deletes: a plan made of fixed paths and name
 * patterns under known directories of a system root. Symbolic links are never
 * followed (a path through one is skipped) and never deleted, so a link a
 * user planted (say ~/.bash_history -> /etc/shadow) cannot redirect a delete.
 */
import { join } from "node:path";
import { readPasswd } from "../passwd.ts";
import { pathUnderRoot } from "../system_adapter.ts";

/** What to clean: the original scrubber's switches. */
export interface ScrubSelection {
  /** -d: DHCP leases. */
  dhcp?: boolean;
  /** -H: shell and tool histories in every home directory. */
  history?: boolean;
  /** -k: private keys in every ~/.ssh. */
  privateKeys?: boolean;
  /** -a: every ~/.ssh/authorized_keys. */
  authorizedKeys?: boolean;
  /** -A: the agent's temporary and report files (and, unless agentRunning, its logs and journal). */
  agent?: boolean;
  /** -t: the agent's token. */
  agentToken?: boolean;
  /** -X: the agent is running, so its logs and journal are kept. */
  agentRunning?: boolean;
  /** -l: *.log and *.gz under /var/log. */
  cleanLogs?: boolean;
}

/** Where to look. */
export interface PlanOptions extends ScrubSelection {
  /** The system root: "/" or a mounted image / throw-away directory. */
  root: string;
  /** The agent's base directory as seen inside the root; default /dcm. */
  baseDir?: string;
  /** The agent's journal file as seen inside the root; default <base>/secure/agentdb.sql. */
  dbFile?: string;
}

/** A path the plan did not touch, and why. */
export interface SkippedPath {
  path: string;
  reason: string;
}

/** The files to delete (absolute paths inside the root, sorted) and what was left alone. */
export interface ScrubPlan {
  files: string[];
  skipped: SkippedPath[];
}

/** Always deleted: the Azure agent's marker makes a clone skip provisioning. */
const ALWAYS = ["/var/lib/waagent/provisioned"];
/** The agent's temporary and report files (-A). */
const AGENT_TEMP_FILES = [
  "/tmp/boot.log",
  "/tmp/agent_info.tar.gz",
  "/tmp/meta_info.txt",
  "/tmp/process_info.txt",
  "/tmp/startup_script.txt",
  "/tmp/error.log",
  "/tmp/installer.sh",
];
const DHCP_DIRS = ["/var/lib/dhcp", "/var/lib/dhcp3", "/var/lib/dhclient", "/var/lib/dhcpcd"];
/** The first line of a private key file (PEM or OpenSSH format). */
const PRIVATE_KEY_LINE = /^-----BEGIN (RSA |DSA |EC |OPENSSH |ENCRYPTED )?PRIVATE KEY-----\r?$/;

/** Works out what a scrub with `options` deletes; reads only. */
export function planScrub(options: PlanOptions): ScrubPlan {
  const p = new Planner(options.root);
  const base = options.baseDir ?? "/dcm";
  for (const f of ALWAYS) p.file(f);
  if (options.agent) {
    for (const f of AGENT_TEMP_FILES) p.file(f);
    if (!options.agentRunning) {
      p.walk(`${base}/logs`, () => true);
      const db = options.dbFile ?? `${base}/secure/agentdb.sql`;
      for (const suffix of ["", "-wal", "-shm", "-journal"]) p.file(`${db}${suffix}`);
    }
  }
  if (options.agentToken) p.file(`${base}/secure/token`);
  if (options.dhcp) {
    for (const dir of DHCP_DIRS) {
      p.walk(dir, (name) => name.includes(".lease") || name.endsWith(".info"));
    }
  }
  if (options.cleanLogs) p.walk("/var/log", (name) => /\.(log|gz)$/.test(name));
  if (options.history || options.privateKeys || options.authorizedKeys) {
    for (const home of homes(options.root)) {
      if (options.history) p.walk(home, (name) => name.startsWith(".") && name.includes("hist"));
      if (options.privateKeys) p.walk(`${home}/.ssh`, (_, host) => isPrivateKey(host));
      if (options.authorizedKeys) p.file(`${home}/.ssh/authorized_keys`);
    }
  }
  return p.result();
}

/** The distinct home directories of the root's passwd users; "/" is never walked. */
function homes(root: string): string[] {
  const out = new Set<string>();
  for (const e of readPasswd({ root })) {
    const home = e.home.replace(/\/+$/, "");
    if (home.startsWith("/") && home !== "") out.add(home);
  }
  return [...out].sort();
}

function isPrivateKey(hostPath: string): boolean {
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(hostPath, { read: true });
    const buf = new Uint8Array(64);
    const n = file.readSync(buf) ?? 0;
    const first = new TextDecoder().decode(buf.subarray(0, n)).split("\n")[0];
    return PRIVATE_KEY_LINE.test(first);
  } catch {
    return false;
  } finally {
    file?.close();
  }
}

/**
 * `path` (absolute, inside the root) as a host path, when no component
 * below the root is a symbolic link; otherwise the first link found.
 */
export function resolveNoLinks(root: string, path: string): { host: string } | { link: string } {
  const parts = path.split("/").filter((s) => s !== "" && s !== ".");
  if (parts.includes("..")) return { link: path };
  let sys = "";
  for (const part of parts) {
    sys += `/${part}`;
    try {
      if (Deno.lstatSync(pathUnderRoot(root, sys)).isSymlink) return { link: sys };
    } catch {
      break; // Missing: the caller's stat reports it.
    }
  }
  return { host: pathUnderRoot(root, path === "" ? "/" : path) };
}

class Planner {
  #root: string;
  #files = new Set<string>();
  #skipped = new Map<string, string>();

  constructor(root: string) {
    this.#root = root;
  }

  /** Adds one path if it is a regular file reached without links. */
  file(path: string): void {
    const r = resolveNoLinks(this.#root, path);
    if ("link" in r) {
      if (this.#exists(path)) this.#skip(path, `the path goes through the symbolic link ${r.link}`);
      return;
    }
    try {
      const st = Deno.lstatSync(r.host);
      if (st.isFile) this.#files.add(path);
    } catch { /* not there: nothing to delete */ }
  }

  /** Adds every regular file below `dir` whose name matches; links are neither followed nor taken. */
  walk(dir: string, match: (name: string, hostPath: string) => boolean): void {
    if (dir === "" || dir === "/") return;
    const r = resolveNoLinks(this.#root, dir);
    if ("link" in r) {
      if (this.#exists(dir)) {
        this.#skip(dir, `the directory goes through the symbolic link ${r.link}`);
      }
      return;
    }
    this.#walk(dir, r.host, match);
  }

  #walk(sys: string, host: string, match: (name: string, hostPath: string) => boolean): void {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(host)];
    } catch {
      return; // Missing or unreadable: nothing to delete here.
    }
    for (const e of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
      const childSys = `${sys}/${e.name}`;
      const childHost = join(host, e.name);
      if (e.isSymlink) {
        if (match(e.name, "")) this.#skip(childSys, "it is a symbolic link (left alone)");
      } else if (e.isDirectory) {
        this.#walk(childSys, childHost, match);
      } else if (e.isFile && match(e.name, childHost)) {
        this.#files.add(childSys);
      }
    }
  }

  #exists(path: string): boolean {
    try {
      Deno.statSync(pathUnderRoot(this.#root, path));
      return true;
    } catch {
      return false;
    }
  }

  #skip(path: string, reason: string): void {
    this.#skipped.set(path, reason);
  }

  result(): ScrubPlan {
    return {
      files: [...this.#files].sort(),
      skipped: [...this.#skipped].map(([path, reason]) => ({ path, reason })).sort((a, b) =>
        a.path < b.path ? -1 : 1
      ),
    };
  }
}
