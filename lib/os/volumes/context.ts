/** What the volume adapter's parts share: its runner, paths and file writer. */
import type { ToolRunner } from "../run_tool.ts";
import type { KernelPaths, NvmeNameReader } from "./block_devices.ts";

/** Internal state the mount flow shares with the adapter. */
export interface VolumesContext {
  runner: ToolRunner;
  kernel: KernelPaths;
  root: string;
  luksFormatOptions: string[];
  installPackages: boolean;
  readNvmeName: NvmeNameReader;
  fstabPath: string;
  mdadmConfPath: string;
  /** Replaces a root-owned file atomically, keeping the previous one as <file>.dcm-agent.bak. */
  writeFile(path: string, content: string): Promise<void>;
}
