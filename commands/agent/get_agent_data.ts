/** `get_agent_data`: a snapshot of CPU, memory, processes and platform. */
import { defineCommand } from "../../lib/core/mod.ts";
import {
  countProcesses,
  cpuBusyFraction,
  cpuCount,
  platformString,
  readCpuTimes,
  readMemory,
} from "../../lib/os/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

/** The original measured CPU load over 0.1 s (psutil `cpu_percent(0.1)`). */
const CPU_SAMPLE_MS = 100;

export default defineCommand({
  name: "get_agent_data",
  description: "Reports CPU count and load, memory, process count and platform of the host.",
  readOnly: true,
  args: {},
  async run() {
    const before = readCpuTimes();
    await new Promise((resolve) => setTimeout(resolve, CPU_SAMPLE_MS));
    const busy = cpuBusyFraction(before, readCpuTimes());
    const memory = readMemory();
    return makeReply(0, {
      reply_type: "agent_data",
      reply_object: {
        cpu_count: cpuCount(),
        // psutil rounds cpu_percent to one decimal place.
        cpu_load: Math.round(busy * 1000) / 10,
        current_ram: memory.used,
        max_ram: memory.total,
        processes: countProcesses(),
        platform: platformString(),
        server_state: "OK",
      },
    });
  },
});
