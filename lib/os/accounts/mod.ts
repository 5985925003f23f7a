/**
 * Local user accounts: the system effects of `add_user` and `remove_user`
 * made with useradd, groupadd, usermod, gpasswd, userdel,
 * visudo and coreutils against a root directory: "/" in production, a
 * throw-away copy of /etc in tests. Files inside a user's home are only ever
 * touched as that user, so a link the user planted can never redirect a
 * root-privileged write.
 *
 * Loaded lazily by path; the parts: user_db.ts (look-ups, login.defs,
 * protected accounts, useradd), ssh_keys.ts (authorized_keys), sudoers.ts
 * (drop-ins checked with visudo), removal.ts (process killing and userdel).
 */
import { getLogger } from "../../logging/mod.ts";
import { checkUserName } from "../../protocol/mod.ts";
import type { GroupEntry, PasswdEntry } from "../passwd.ts";
import { ToolRunner } from "../run_tool.ts";
import type { SystemAdapterOptions } from "../system_adapter.ts";
import type { AccountsContext } from "./context.ts";
import { deleteUser } from "./removal.ts";
import { installKey, parsePublicKey } from "./ssh_keys.ts";
import { removeOwnDropIn, setAdministrator } from "./sudoers.ts";
import {
  createUser,
  findGroup,
  findUser,
  gecosOf,
  type LoginDefs,
  readLoginDefs,
  refuseProtected,
} from "./user_db.ts";

export { AccountError, describeFailure } from "./errors.ts";
export { parsePublicKey } from "./ssh_keys.ts";
export type { LoginDefs } from "./user_db.ts";
export type { GroupEntry, PasswdEntry } from "../passwd.ts";

const log = getLogger(["dcm", "agent", "plugins"]);

/** Options of an {@linkcode Accounts} adapter. */
export interface AccountsOptions extends SystemAdapterOptions {
  /** The uid the agent runs as, never removed; default: this process's uid when root is "/". */
  selfUid?: number | null;
}

/** What `add_user` asks for. */
export interface AddUserRequest {
  userName: string;
  firstName: string | null;
  lastName: string | null;
  /** One SSH public key line, or null/empty for none. */
  publicKey: string | null;
  administrator: boolean;
  /** The agent's own user ([system]user): never changed, and its group is granted with admin rights. */
  agentUser?: string | null;
}

/** Options for {@linkcode Accounts.removeUser}. */
export interface RemoveUserOptions {
  /** The agent's own user ([system]user), which is never removed. */
  agentUser?: string | null;
}

/** Adds, changes and removes local users under a root directory. */
export class Accounts {
  /** The system root the adapter works on. */
  readonly root: string;
  readonly #ctx: AccountsContext;
  readonly #selfUid: number | null;

  constructor(options: AccountsOptions) {
    this.root = options.root;
    this.#ctx = {
      root: options.root,
      run: new ToolRunner({ sudo: options.sudo, tempDir: options.tempDir }),
    };
    this.#selfUid = options.selfUid !== undefined
      ? options.selfUid
      : options.root === "/"
      ? Deno.uid()
      : null;
  }

  /** Reads the user `name` from the root's /etc/passwd. */
  lookupUser(name: string): Promise<PasswdEntry | undefined> {
    return findUser(this.#ctx, name);
  }

  /** Reads the group `name` from the root's /etc/group. */
  lookupGroup(name: string): Promise<GroupEntry | undefined> {
    return findGroup(this.#ctx, name);
  }

  /** Reads UID_MIN and GID_MIN from the root's /etc/login.defs (1000 when unset). */
  loginDefs(): Promise<LoginDefs> {
    return readLoginDefs(this.#ctx);
  }

  /** Creates or updates a user as the original agent did; returns what was changed. */
  async addUser(request: AddUserRequest): Promise<string[]> {
    const name = checkUserName(request.userName);
    const gecos = gecosOf(request.firstName, request.lastName);
    const key = request.publicKey?.trim() ? parsePublicKey(request.publicKey) : null;
    const defs = await this.loginDefs();
    const done: string[] = [];
    let user = await this.lookupUser(name);
    refuseProtected(name, user, {
      defs,
      verb: "change",
      agentUser: request.agentUser,
      selfUid: this.#selfUid,
    });
    if (!user) {
      user = await createUser(this.#ctx, name, { gecos, defs });
      done.push(`created user ${name}`);
    }
    // Keys before sudo rights: a refused (planted) link must stop the escalation too.
    if (key) done.push(...await installKey(this.#ctx, user, key));
    done.push(
      ...await setAdministrator(this.#ctx, user, {
        administrator: request.administrator,
        agentUser: request.agentUser,
      }),
    );
    for (const change of done) log.info("add_user {name}: {change}", { name, change });
    return done;
  }

  /** Removes a user, its home, mail spool and own sudoers drop-in; a missing user is fine. */
  async removeUser(userName: string, options: RemoveUserOptions = {}): Promise<string[]> {
    const name = checkUserName(userName);
    const user = await this.lookupUser(name);
    const defs = await this.loginDefs();
    refuseProtected(name, user, {
      defs,
      verb: "remove",
      agentUser: options.agentUser,
      selfUid: this.#selfUid,
    });
    // Also without the user: a stale drop-in would make a future user of this name an administrator.
    const done = await removeOwnDropIn(this.#ctx, name);
    done.push(user ? await deleteUser(this.#ctx, user) : `user ${name} does not exist`);
    log.info("remove_user {name}: {done}", { name, done: done.join("; ") });
    return done;
  }
}
