// A micro-batcher: many concurrent callers push one item each; items are grouped into batches of at
// most `maxBatch` and handed to one `run(items)` call at a time, and each caller gets the result at
// its own index. Knows nothing of GPUs or images (the Inspector uses it to put concurrent
// inspections onto the GPU together).
//
// Scheduling: a batch starts as soon as `maxBatch` items are waiting, or `maxWaitMs` after the first
// item arrived at an idle queue. Batches never overlap: items that arrive while one runs wait for it,
// and the next batch starts the moment it ends (they have waited at least that long already).
import { WgslNnError } from '../gpu/errors.js';

export interface BatchQueueOptions {
  /** Largest batch handed to `run` (default 16). */
  maxBatch?: number;
  /** How long the first item of a batch waits for company when nothing is running (default 2 ms). */
  maxWaitMs?: number;
}

/** The queue was closed before this item was run. */
export class BatchQueueClosedError extends WgslNnError {}

/** Counters, for metrics and tests. */
export interface BatchQueueStats {
  /** Items waiting for a batch. */
  queued: number;
  /** Items in the batch now running (0 when idle). */
  running: number;
  /** Batches run so far. */
  batches: number;
  /** Items run so far (fulfilled or rejected by `run`). */
  items: number;
  /** The largest batch run so far. */
  largestBatch: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

export class BatchQueue<I, O> {
  readonly maxBatch: number;
  readonly maxWaitMs: number;
  private readonly waiting: Waiting<I, O>[] = [];
  private runningCount = 0;
  private timer: NodeJS.Timeout | undefined;
  private closedReason: string | undefined;
  private idleWaiters: (() => void)[] = [];
  private batches = 0;
  private items = 0;
  private largestBatch = 0;

  /**
   * `run` gets the items of one batch and must return one result per item, in the same order. If it
   * throws, every item of that batch is rejected with that error (and only that batch's items).
   */
  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    options: BatchQueueOptions = {},
  ) {
    const maxBatch = options.maxBatch ?? 16;
    const maxWaitMs = options.maxWaitMs ?? 2;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`BatchQueue: maxBatch must be a positive integer, got ${maxBatch}`);
    if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) throw new RangeError(`BatchQueue: maxWaitMs must be a number >= 0, got ${maxWaitMs}`);
    this.maxBatch = maxBatch;
    this.maxWaitMs = maxWaitMs;
  }

  /** Queues one item; resolves with its result when its batch has run. */
  push(item: I): Promise<O> {
    if (this.closedReason !== undefined) return Promise.reject(new BatchQueueClosedError(this.closedReason));
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.schedule();
    });
  }

  stats(): BatchQueueStats {
    return {
      queued: this.waiting.length,
      running: this.runningCount,
      batches: this.batches,
      items: this.items,
      largestBatch: this.largestBatch,
    };
  }

  /** Resolves once nothing is queued or running. */
  drain(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops accepting items. Items still queued are rejected with BatchQueueClosedError(`reason`);
   * a batch already running finishes and its callers get their results.
   */
  close(reason = 'the batch queue was closed'): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.clearTimer();
    for (const w of this.waiting.splice(0)) w.reject(new BatchQueueClosedError(reason));
    this.notifyIfIdle();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  private schedule(): void {
    if (this.runningCount > 0) return; // the running batch starts the next one when it ends
    if (this.waiting.length >= this.maxBatch) {
      void this.runNext();
      return;
    }
    // The timer keeps the process alive while callers wait on it, as it must (it is at most maxWaitMs).
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.runNext();
    }, this.maxWaitMs);
  }

  private async runNext(): Promise<void> {
    this.clearTimer();
    if (this.runningCount > 0 || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, this.maxBatch);
    this.runningCount = batch.length;
    this.batches++;
    this.items += batch.length;
    this.largestBatch = Math.max(this.largestBatch, batch.length);
    try {
      let results: O[];
      try {
        results = await this.run(batch.map((w) => w.item));
      } catch (e) {
        for (const w of batch) w.reject(e);
        return;
      }
      if (!Array.isArray(results) || results.length !== batch.length) {
        const got = Array.isArray(results) ? `${results.length} results` : typeof results;
        const err = new WgslNnError(`BatchQueue: run() returned ${got} for a batch of ${batch.length} items`);
        for (const w of batch) w.reject(err);
        return;
      }
      batch.forEach((w, i) => w.resolve(results[i]));
    } finally {
      this.runningCount = 0;
      if (this.waiting.length > 0) void this.runNext();
      else this.notifyIfIdle();
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private isIdle(): boolean {
    return this.waiting.length === 0 && this.runningCount === 0;
  }

  private notifyIfIdle(): void {
    if (!this.isIdle()) return;
    for (const r of this.idleWaiters.splice(0)) r();
  }
}
