// The engine's GPU waits sleep the main thread instead of letting dawn.node poll (src/gpu/gpu-wait.ts).
// These tests check behaviour, not speed: results stay right, concurrent waits all settle, errors
// propagate, and 'poll' mode is dawn.node's own await.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { GpuWaiter } from '../src/gpu/gpu-wait.js';
import * as F from '../src/nn/functional.js';
import { matmulRef } from '../src/kernels/reference/matmul.js';
import { randArray, relErr, rng, testEngine } from './helpers.js';

describe('GpuWaiter', () => {
  it('settles many concurrent waits, each with its own value, and propagates a rejection', async () => {
    const w = new GpuWaiter({ maxSliceMs: 1 });
    const later = (v: number, ms: number) => new Promise<number>((r) => setTimeout(() => r(v), ms));
    const values = await Promise.all([w.wait(later(1, 5)), w.wait(later(2, 1)), w.wait(Promise.resolve(3)), w.wait(later(4, 12))]);
    expect(values).toEqual([1, 2, 3, 4]);
    await expect(w.wait(Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });

  it("'poll' mode returns the promise untouched and never sleeps", async () => {
    const w = new GpuWaiter({ mode: 'poll' });
    const p = Promise.resolve(7);
    expect(w.wait(p)).toBe(p);
    expect(await w.wait(p)).toBe(7);
    expect(w.sleptMs).toBe(0);
    expect(w.waits).toBe(0);
  });
});

describe('engine waits', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await testEngine();
  });
  afterAll(() => engine.destroy());

  it('reads back a linear layer, sleeping rather than polling, with the right values', async () => {
    expect(engine.waiter.mode).toBe('sleep');
    const r = rng(11);
    const [m, k, n] = [192, 160, 96];
    const a = randArray(r, m * k), b = randArray(r, k * n);
    const waits = engine.waiter.waits;
    const reads = [];
    for (let i = 0; i < 3; i++) {
      const c = F.linear(engine.tensor(a, [m, k]), engine.tensor(b, [n, k]));
      reads.push(c.toArray()); // three readbacks in flight at once share one wait loop
    }
    const got = await Promise.all(reads);
    const exp = matmulRef(a, [m, k], b, [n, k], { transB: true }).data;
    for (const g of got) expect(relErr(g, exp)).toBeLessThan(1e-5); // float32 sums of 160 products
    // Every readback went through the sleeping waiter (whether it had to sleep depends on the machine's speed).
    expect(engine.waiter.waits).toBeGreaterThanOrEqual(waits + 3);
  });
});
