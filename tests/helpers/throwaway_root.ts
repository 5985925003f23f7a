/**
 * Throw-away system roots for the account and hostname tests: a temp
 * directory with copies of the host's account files, so that `useradd --root`
 * and friends change the copy, never the machine running the tests.
 */
import { join } from "node:path";

/** A prepared root directory. */
export interface ThrowawayRoot {
  root: string;
  /** UID_MIN and GID_MIN of this root: a random high range, unique per root. */
  idMin: number;
  /** Deletes the root. */
  cleanup(): Promise<void>;
}

const ACCOUNT_FILES = ["passwd", "group", "shadow", "gshadow"];

/** True when this process may create users in a throw-away root (root, with the shadow tools). */
export function canManageAccounts(): boolean {
  if (Deno.uid() !== 0) return false;
  return ["/usr/sbin/useradd", "/usr/bin/setpriv"].every((tool) => {
    try {
      return Deno.statSync(tool).isFile;
    } catch {
      return false;
    }
  });
}

/** Creates a root with /etc account files, login.defs, skel, sudoers.d, hostname and hosts. */
export async function makeThrowawayRoot(): Promise<ThrowawayRoot> {
  const root = await Deno.makeTempDir({ prefix: "dcm-root-" });
  // Users of the root must be able to reach their homes under it.
  await Deno.chmod(root, 0o755);
  for (const dir of ["etc/default", "etc/skel", "etc/sudoers.d", "home", "var/mail", "bin"]) {
    await Deno.mkdir(join(root, dir), { recursive: true, mode: 0o755 });
  }
  for (const file of ACCOUNT_FILES) {
    await Deno.copyFile(`/etc/${file}`, join(root, "etc", file));
  }
  // A high uid range, random per root, so that ids never belong to a real user of the
  // test machine (remove_user kills processes by uid) nor to a parallel test's root.
  const idMin = 300_000 + Math.floor(Math.random() * 1_000_000) * 1000;
  await Deno.writeTextFile(
    join(root, "etc/login.defs"),
    [
      "MAIL_DIR /var/mail",
      `UID_MIN ${idMin}`,
      `UID_MAX ${idMin + 999}`,
      `GID_MIN ${idMin}`,
      `GID_MAX ${idMin + 999}`,
      "USERGROUPS_ENAB yes",
      "ENCRYPT_METHOD SHA512",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(join(root, "etc/default/useradd"), "SHELL=/bin/sh\n");
  await Deno.writeTextFile(join(root, "etc/skel/.profile"), "# test skeleton\n");
  // useradd warns when the login shell is missing from the root.
  await Deno.writeTextFile(join(root, "bin/bash"), "#!/bin/sh\n", { mode: 0o755 });
  await Deno.writeTextFile(join(root, "etc/hostname"), "original-host\n");
  await Deno.writeTextFile(
    join(root, "etc/hosts"),
    "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.0.0.50 neighbour\n",
  );
  return { root, idMin, cleanup: () => Deno.remove(root, { recursive: true }) };
}

/** Runs a tool and returns its stdout; throws with its stderr when it fails. */
export async function tool(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1) }).output();
  const text = new TextDecoder();
  if (!out.success) throw new Error(`${argv.join(" ")} failed: ${text.decode(out.stderr)}`);
  return text.decode(out.stdout);
}
