/**
 * Long-running jobs (ARCHITECTURE.md, Command rules): a job id, WAITING → RUNNING → COMPLETE or
 * ERROR, kept in the journal so get_job_description answers after a restart.
 */
import type { JobDescription, JobLookup } from "./command.ts";
import type { JobRow, Journal } from "./journal.ts";
import { percentEncode, type ReplyPayload } from "../protocol/mod.ts";

/** The job table, backed by the journal. */
export class JobTable implements JobLookup {
  #journal: Journal;
  #nextId: number;

  constructor(journal: Journal) {
    this.#journal = journal;
    this.#nextId = journal.nextJobId();
  }

  /** The job's public description, or undefined. */
  describe(jobId: number): JobDescription | undefined {
    const row = this.#journal.getJob(jobId);
    return row ? publicView(row) : undefined;
  }

  /** The job a request created, if any. */
  forRequest(requestId: string): JobRow | undefined {
    return this.#journal.jobForRequest(requestId);
  }

  /** Creates a WAITING job and persists it. */
  async create(
    requestId: string,
    options: { command: string; arguments: Record<string, unknown>; customerId: unknown },
  ): Promise<JobRow> {
    const job: JobRow = {
      job_id: this.#nextId++,
      requestId,
      command: options.command,
      description: options.command,
      arguments: options.arguments,
      customer_id: options.customerId ?? null,
      job_status: "WAITING",
      message: null,
      start_date: 0,
      end_date: 0,
      command_reply: null,
    };
    await this.#journal.saveJob(job);
    return job;
  }

  /** Durably marks a job RUNNING before it starts. */
  markRunning(job: JobRow): Promise<void> {
    job.job_status = "RUNNING";
    job.start_date = Math.floor(Date.now() / 1000);
    job.end_date = null;
    return this.#journal.saveJob(job);
  }

  /** Records a job's result: ERROR when return_code is not 0. */
  finish(job: JobRow, reply: ReplyPayload): Promise<void> {
    const ok = reply.return_code === 0;
    job.job_status = ok ? "COMPLETE" : "ERROR";
    job.end_date = Math.floor(Date.now() / 1000);
    job.command_reply = reply;
    job.message = ok
      ? null
      : (reply.error_message || percentEncode(reply.message || "the job failed"));
    return this.#journal.saveJob(job);
  }

  /** Start-up recovery: RUNNING jobs become ERROR ("lost"); WAITING jobs are returned to run. */
  async recover(): Promise<JobRow[]> {
    for (const job of this.#journal.jobsInState(["RUNNING"])) {
      job.job_status = "ERROR";
      job.end_date = Math.floor(Date.now() / 1000);
      job.message = percentEncode(
        "The agent stopped while this job was running; its result was lost and it was not run again.",
      );
      await this.#journal.saveJob(job);
    }
    return this.#journal.jobsInState(["WAITING"]);
  }
}

/** The wire form of a job (ARCHITECTURE.md, Command rules). */
export function publicView(row: JobRow): JobDescription {
  return {
    customer_id: row.customer_id,
    description: row.description,
    job_id: row.job_id,
    job_status: row.job_status,
    message: row.message,
    start_date: row.start_date,
    end_date: row.end_date,
    command_reply: row.command_reply,
  };
}
