// The micro-batcher on its own (no GPU): batch formation, results to the right caller, failures
// confined to their batch, close/drain. The `run` functions here resolve when the test says so, so
// nothing depends on timing.
import { describe, expect, it } from 'vitest';
import { BatchQueue, BatchQueueClosedError } from '../src/cnn/batch-queue.js';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A run() that records each batch and holds it until released (gates[i] for the i-th batch). */
function gatedRunner(fail?: (items: number[]) => boolean) {
  const batches: number[][] = [];
  const gates: Deferred[] = [];
  const started: Deferred[] = Array.from({ length: 64 }, deferred);
  const run = async (items: number[]): Promise<string[]> => {
    const i = batches.length;
    batches.push(items);
    gates[i] = deferred();
    started[i].resolve();
    await gates[i].promise;
    if (fail?.(items)) throw new Error(`batch ${i} failed`);
    return items.map((x) => `result of ${x}`);
  };
  return { run, batches, gates, started };
}

describe('BatchQueue', () => {
  it('batches 16 concurrent callers into batches of maxBatch and gives each caller its own result', async () => {
    const r = gatedRunner();
    const q = new BatchQueue(r.run, { maxBatch: 4, maxWaitMs: 1 });
    const calls = Array.from({ length: 16 }, (_, i) => q.push(i));
    for (let b = 0; b < 4; b++) {
      await r.started[b].promise;
      expect(q.stats().running).toBe(4);
      r.gates[b].resolve();
    }
    const results = await Promise.all(calls);
    expect(results).toEqual(Array.from({ length: 16 }, (_, i) => `result of ${i}`));
    expect(r.batches).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9, 10, 11],
      [12, 13, 14, 15],
    ]);
    expect(q.stats()).toEqual({ queued: 0, running: 0, batches: 4, items: 16, largestBatch: 4 });
  });

  it('runs a lone item after maxWaitMs without waiting for a full batch', async () => {
    const q = new BatchQueue(async (items: number[]) => items.map((x) => x * 3), { maxBatch: 16, maxWaitMs: 0 });
    await expect(q.push(7)).resolves.toBe(21);
    expect(q.stats().largestBatch).toBe(1);
  });

  it('gathers items that arrive while a batch runs into the next batch', async () => {
    const r = gatedRunner();
    const q = new BatchQueue(r.run, { maxBatch: 8, maxWaitMs: 0 });
    const first = q.push(100);
    await r.started[0].promise;
    const later = [1, 2, 3, 4, 5].map((x) => q.push(x)); // arrive while batch 0 is running
    expect(q.stats().queued).toBe(5);
    r.gates[0].resolve();
    await r.started[1].promise;
    r.gates[1].resolve();
    expect(await first).toBe('result of 100');
    expect(await Promise.all(later)).toEqual([1, 2, 3, 4, 5].map((x) => `result of ${x}`));
    expect(r.batches).toEqual([[100], [1, 2, 3, 4, 5]]);
  });

  it('rejects only the callers of a failed batch', async () => {
    const r = gatedRunner((items) => items.includes(5));
    const q = new BatchQueue(r.run, { maxBatch: 4, maxWaitMs: 0 });
    const calls = Array.from({ length: 12 }, (_, i) => q.push(i));
    for (let b = 0; b < 3; b++) {
      await r.started[b].promise;
      r.gates[b].resolve();
    }
    const settled = await Promise.allSettled(calls);
    settled.forEach((s, i) => {
      if (i >= 4 && i < 8) {
        expect(s.status).toBe('rejected');
        expect(((s as PromiseRejectedResult).reason as Error).message).toBe('batch 1 failed');
      } else expect(s).toEqual({ status: 'fulfilled', value: `result of ${i}` });
    });
  });

  it('rejects a batch whose run() returns the wrong number of results, naming the mismatch', async () => {
    const q = new BatchQueue(async (items: number[]) => items.slice(1), { maxBatch: 2, maxWaitMs: 0 });
    const calls = [q.push(1), q.push(2)];
    for (const c of calls) await expect(c).rejects.toThrow(/returned 1 results for a batch of 2 items/);
    // the queue keeps working after a bad batch
    const ok = new BatchQueue(async (items: number[]) => items, { maxBatch: 2, maxWaitMs: 0 });
    await expect(ok.push(9)).resolves.toBe(9);
  });

  it('a run() that throws synchronously rejects its batch only', async () => {
    let n = 0;
    const q = new BatchQueue(
      ((items: number[]) => {
        if (n++ === 0) throw new Error('sync failure');
        return Promise.resolve(items.map((x) => -x));
      }) as (items: number[]) => Promise<number[]>,
      { maxBatch: 1, maxWaitMs: 0 },
    );
    const a = q.push(1);
    const b = q.push(2);
    await expect(a).rejects.toThrow('sync failure');
    await expect(b).resolves.toBe(-2);
  });

  it('close() rejects queued items, lets the running batch finish, and refuses new items; drain() waits', async () => {
    const r = gatedRunner();
    const q = new BatchQueue(r.run, { maxBatch: 2, maxWaitMs: 0 });
    const running = [q.push(1), q.push(2)];
    const queued = [q.push(3), q.push(4)];
    await r.started[0].promise;
    q.close('shutting down');
    expect(q.closed).toBe(true);
    for (const c of queued) await expect(c).rejects.toThrow(BatchQueueClosedError);
    await expect(q.push(5)).rejects.toThrow('shutting down');
    const drained = q.drain();
    r.gates[0].resolve();
    await drained;
    expect(await Promise.all(running)).toEqual(['result of 1', 'result of 2']);
    expect(r.batches).toEqual([[1, 2]]);
    await q.drain(); // idle: resolves at once
  });

  it('rejects bad options clearly', () => {
    const run = async (x: number[]) => x;
    expect(() => new BatchQueue(run, { maxBatch: 0 })).toThrow(/maxBatch must be a positive integer/);
    expect(() => new BatchQueue(run, { maxBatch: 2.5 })).toThrow(/maxBatch/);
    expect(() => new BatchQueue(run, { maxWaitMs: -1 })).toThrow(/maxWaitMs must be a number >= 0/);
  });
});
