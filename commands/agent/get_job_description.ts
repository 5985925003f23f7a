/** `get_job_description`: the state of a long-running job. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "get_job_description",
  description: "Reports the state of a long-running job by its jobId.",
  readOnly: true,
  execution: "immediate",
  args: {
    jobId: { type: "int", required: true, help: "The job id from a job_description reply." },
  },
  run(args, ctx) {
    if (args.jobId === null) throw new Error("argument 'jobId' must be a job number, not null");
    const job = ctx.services.jobs.describe(args.jobId);
    if (!job) {
      const text = `no such job id ${args.jobId}`;
      return Promise.resolve(makeReply(1, { message: text, error_message: text }));
    }
    return Promise.resolve(makeReply(0, { reply_type: "job_description", reply_object: job }));
  },
});
