/** Process-group checks for tests that kill whole process trees. */

/** Pids of living (non-zombie) processes in process group `pgid`, read from /proc. */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue; // exited while we looked
    }
    // Fields after "(comm)": state ppid pgrp ...; comm may contain spaces.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z") members.push(Number(entry.name));
  }
  return members;
}

/** Waits up to 2 s for a process group to be gone (SIGKILL takes effect asynchronously). */
export async function waitGroupGone(pgid: number): Promise<number[]> {
  for (let i = 0; i < 40; i++) {
    const left = groupMembers(pgid);
    if (left.length === 0) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return groupMembers(pgid);
}
