// The recorder's bind-group cache (src/gpu/bind-groups.ts) and its one-write uniform arena: a reused
// bind group must bind exactly what a new one would, every dispatch of a batch must read its own
// uniforms, and groups of destroyed buffers must go.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BindGroupCache } from '../src/gpu/bind-groups.js';
import { Engine } from '../src/gpu/engine.js';
import { scale } from '../src/kernels/elementwise.js';
import { STORAGE_USAGE } from '../src/gpu/usage.js';
import { testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

describe('bind-group cache', () => {
  it('reuses groups for the same buffers while each dispatch reads its own uniforms', async () => {
    const n = 37;
    const input = Float32Array.from({ length: n }, (_, i) => Math.cos(i) + 2);
    const x = engine.fromArray(input, [n]);
    await engine.sync();
    // 6 batches of 20 dispatches, all on the same pipeline: within a batch every dispatch has its own
    // uniform slot (alpha = k + 0.5 + round, beta = -k); across batches the pool hands back the same
    // output buffers and arena (after a few rounds, in the same order), so the groups are reused while
    // the values change.
    const before = engine.bindGroupStats;
    let hitsBeforeLastTwo = 0;
    for (let round = 0; round < 6; round++) {
      if (round === 4) hitsBeforeLastTwo = engine.bindGroupStats.hits;
      const ys = Array.from({ length: 20 }, (_, k) => scale(x, k + 0.5 + round, -k));
      const outs = await Promise.all(ys.map((y) => y.toArray()));
      outs.forEach((out, k) => {
        // Float64 reference; 1e-6 relative covers f32 rounding (with or without a fused multiply-add).
        for (let i = 0; i < n; i++) {
          const want = input[i] * (k + 0.5 + round) - k;
          expect(Math.abs(out[i] - want), `round ${round}, dispatch ${k}, element ${i}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want)));
        }
      });
      for (const y of ys) y.dispose();
    }
    const after = engine.bindGroupStats;
    expect(after.hits + after.misses - before.hits - before.misses).toBe(120);
    expect(after.hits - hitsBeforeLastTwo, 'the last two rounds reuse every group').toBe(40);
    x.dispose();
  });

  it('drops the groups of buffers the pool destroys, so a capped pool keeps the cache small', async () => {
    const capped = await Engine.create({ poisonAllocations: true, maxPooledBytes: 32 * 1024 });
    try {
      // 80 sizes: each new size binds new buffers; the cap destroys old ones, and their groups with them.
      for (let i = 0; i < 80; i++) {
        const n = 500 + 97 * i;
        const x = capped.fromArray(new Float32Array(n).fill(1 + i), [n]);
        const y = scale(x, 2, 1);
        const out = await y.toArray();
        expect(out[0]).toBe(2 * (1 + i) + 1);
        expect(out[n - 1]).toBe(2 * (1 + i) + 1);
        x.dispose();
        y.dispose();
      }
      await capped.sync();
      const s = capped.bindGroupStats;
      expect(s.misses).toBeGreaterThanOrEqual(60);
      expect(s.size).toBeLessThan(s.misses / 2);
    } finally {
      capped.destroy();
    }
  });

  it('evicts the least recently used group beyond its capacity and forgets a buffer on request', () => {
    const device = engine.device;
    const cache = new BindGroupCache(device, 3);
    const pipeline = device.createComputePipeline({
      layout: 'auto',
      compute: {
        module: device.createShaderModule({
          code: '@group(0) @binding(1) var<storage, read_write> a: array<f32>;\n@compute @workgroup_size(1) fn main() { a[0] = 1.0; }',
        }),
        entryPoint: 'main',
      },
    });
    const buffers = Array.from({ length: 5 }, () => device.createBuffer({ size: 256, usage: STORAGE_USAGE }));
    const entry = (b: GPUBuffer, offset = 0) => [{ binding: 1, buffer: b, offset, size: 16 }];
    const g0 = cache.get(pipeline, entry(buffers[0]), 't');
    const g1 = cache.get(pipeline, entry(buffers[1]), 't');
    expect(cache.get(pipeline, entry(buffers[0]), 't')).toBe(g0); // hit; 0 is now the most recent
    expect(cache.get(pipeline, entry(buffers[0], 0), 't')).toBe(g0);
    expect(cache.get(pipeline, entry(buffers[0], 256 - 16), 't')).not.toBe(g0); // another range: another group
    expect(cache.size).toBe(3);
    cache.get(pipeline, entry(buffers[2]), 't'); // over capacity: 1, the least recently used, goes
    expect(cache.size).toBe(3);
    expect(cache.get(pipeline, entry(buffers[0]), 't')).toBe(g0);
    expect(cache.get(pipeline, entry(buffers[1]), 't')).not.toBe(g1);
    cache.forgetBuffer(buffers[0]);
    expect(cache.size).toBe(2);
    expect(cache.get(pipeline, entry(buffers[0]), 't')).not.toBe(g0);
    for (const b of buffers) b.destroy();
  });
});
