/**
 * A FIFO pool that runs at most `size` tasks at a time ([workers] count and
 * long_runner_threads). Queued tasks can be withdrawn, e.g. on CANCEL.
 */

/** A task waiting for or holding a worker. */
export interface PoolTask {
  id: string;
  run(): Promise<void>;
}

/** A fixed-size pool of async workers. */
export class WorkerPool {
  #size: number;
  #queue: PoolTask[] = [];
  #running = 0;
  #idle: (() => void)[] = [];

  constructor(size: number) {
    this.#size = Math.max(1, size);
  }

  /** Queues a task; it starts as soon as a worker is free. */
  submit(task: PoolTask): void {
    this.#queue.push(task);
    this.#pump();
  }

  /** Removes a task that has not started; returns whether it was queued. */
  withdraw(id: string): boolean {
    const i = this.#queue.findIndex((t) => t.id === id);
    if (i < 0) return false;
    this.#queue.splice(i, 1);
    return true;
  }

  /** Changes the number of workers (SIGHUP). */
  resize(size: number): void {
    this.#size = Math.max(1, size);
    this.#pump();
  }

  /** Workers a task submitted now would find idle. */
  get freeWorkers(): number {
    return Math.max(0, this.#size - this.#running - this.#queue.length);
  }

  /** Drops every queued task and resolves when the running ones have finished. */
  drain(): Promise<void> {
    this.#queue = [];
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (this.#running < this.#size && this.#queue.length > 0) {
      const task = this.#queue.shift()!;
      this.#running++;
      task.run().catch(() => {/* tasks report their own errors */}).finally(() => {
        this.#running--;
        if (this.#running === 0 && this.#queue.length === 0) {
          for (const f of this.#idle.splice(0)) f();
        }
        this.#pump();
      });
    }
  }
}
