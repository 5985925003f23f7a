/** The volumes adapter a command uses: the one handed in (tests) or a live one for "/". */
import type { CommandContext } from "../../lib/core/mod.ts";
import { liveAdapterOptions } from "../../lib/os/mod.ts";
import type { Volumes } from "../../lib/os/volumes/mod.ts";

/** Imports the adapter's code on first use, so an idle agent does not load it. */
export async function volumesOf(ctx: CommandContext): Promise<Volumes> {
  const handed = ctx.services.adapters.volumes;
  if (handed) return handed;
  const { Volumes } = await import("../../lib/os/volumes/mod.ts");
  return new Volumes(liveAdapterOptions(ctx.config));
}

/** The failure text of a volume error or a failed tool; null for anything unexpected. */
export async function volumeFailure(err: unknown): Promise<string | null> {
  const { VolumeError } = await import("../../lib/os/volumes/mod.ts");
  const { ToolError } = await import("../../lib/os/run_tool.ts");
  if (err instanceof VolumeError || err instanceof ToolError) return err.message;
  return null;
}

const TOOL_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** True when mount, blkid and mkfs are on this machine: what the mount and format features need. */
export function volumeToolsPresent(): boolean {
  return ["mount", "umount", "blkid", "mkfs"].every((t) =>
    TOOL_DIRS.some((d) => {
      try {
        return Deno.statSync(`${d}/${t}`).isFile;
      } catch {
        return false;
      }
    })
  );
}
