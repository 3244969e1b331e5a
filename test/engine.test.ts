import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { GpuError, NoAdapterError, ShaderCompileError, TensorTooLargeError } from '../src/gpu/errors.js';
import { activationBackward, activationForward } from '../src/kernels/activation.js';
import { maxPool2dForward } from '../src/kernels/maxpool2d.js';
import { tidy, track } from '../src/nn/scope.js';
import { testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

describe('Engine', () => {
  it('describes the adapter and requests its limits', () => {
    expect(engine.describe().length).toBeGreaterThan(3);
    expect(typeof engine.info.software).toBe('boolean');
    expect(engine.limits.maxStorageBufferBindingSize).toBe(engine.adapter.limits.maxStorageBufferBindingSize);
    expect(engine.limits.maxComputeInvocationsPerWorkgroup).toBe(engine.adapter.limits.maxComputeInvocationsPerWorkgroup);
  });

  it('round-trips f32 and i32 data', async () => {
    const f = engine.fromArray(new Float32Array([1.5, -2, 3e-8]), [3]);
    const i = engine.fromArray(new Int32Array([7, -9]), [2]);
    expect(Array.from(await f.toArray())).toEqual([1.5, -2, Math.fround(3e-8)]);
    expect(Array.from(await i.toArray())).toEqual([7, -9]);
    expect(Array.from(await engine.zeros([4]).toArray())).toEqual([0, 0, 0, 0]);
    expect(Array.from(await engine.full([2], 3.25).toArray())).toEqual([3.25, 3.25]);
  });

  it('poisons new allocations with NaN in test engines', async () => {
    const t = engine.empty([5]);
    expect(Array.from(await t.toArray()).every(Number.isNaN)).toBe(true);
    t.dispose();
  });

  it('reuses pooled buffers: 1000 forward+backward rounds keep bytesAllocated flat', async () => {
    const x = engine.fromArray(new Float32Array(1000).map((_, i) => Math.sin(i)), [10, 100]);
    const round = () => {
      const y = activationForward(x, 'tanh');
      const dx = activationBackward(y, x, 'tanh');
      y.dispose();
      dx.dispose();
    };
    // Warm-up: a released buffer is reusable only after the submit that ends its batch, so the pool
    // first grows to one batch of temporaries (maxDispatchesPerSubmit), then stays there.
    for (let i = 0; i < 300; i++) round();
    await engine.sync();
    const before = engine.memory();
    for (let i = 0; i < 1000; i++) round();
    await engine.sync();
    const after = engine.memory();
    expect(after.bytesAllocated).toBe(before.bytesAllocated);
    expect(after.liveBuffers).toBe(before.liveBuffers);
    expect(after.bytesInUse).toBe(before.bytesInUse);
    x.dispose();
  });

  it('keeps at most maxPooledBytes of released buffers, dropping those released longest ago, and reuses the rest', async () => {
    const cap = 64 * 1024;
    const capped = await Engine.create({ poisonAllocations: true, maxPooledBytes: cap });
    try {
      // Tensors of 40 different sizes (10-50 KB), each made, read and released in turn: an unbounded pool
      // would keep a buffer of every bucket.
      for (let i = 0; i < 40; i++) {
        const t = capped.fromArray(new Float32Array(2500 + 250 * i).fill(i), [2500 + 250 * i]);
        expect((await t.toArray())[0]).toBe(i);
        t.dispose();
      }
      await capped.sync();
      const m = capped.memory();
      expect(m.bytesInUse).toBe(0);
      expect(m.bytesAllocated).toBeLessThanOrEqual(cap);
      expect(m.pooledBuffers).toBeGreaterThan(0);
      // The newest released buffer is still pooled: the same size again allocates nothing new.
      const again = capped.fromArray(new Float32Array(2500 + 250 * 39), [2500 + 250 * 39]);
      expect(capped.memory().bytesAllocated).toBe(m.bytesAllocated);
      again.dispose();
    } finally {
      capped.destroy();
    }
  });

  it('counts buffers awaiting a submit against maxPooledBytes: allocated stays within in use + the cap', async () => {
    const cap = 64 * 1024;
    const capped = await Engine.create({ poisonAllocations: true, maxPooledBytes: cap });
    try {
      // 60 sizes (4-16 KB), released between submits in threes (up to 48 KB awaiting a submit, which cannot
      // be destroyed yet): free buffers make room for them, so allocated - in use never exceeds the cap.
      // Before, the free lists alone could hold the cap while more awaited a submit.
      const held = capped.empty([3000]);
      for (let i = 0; i < 60; i++) {
        const t = capped.empty([1000 + 50 * i]);
        t.dispose();
        const m = capped.memory();
        expect(m.bytesAllocated, `after release ${i}`).toBeLessThanOrEqual(m.bytesInUse + cap);
        if (i % 3 === 2) capped.flush();
      }
      held.dispose();
      await capped.sync();
      const m = capped.memory();
      expect(m.bytesInUse).toBe(0);
      expect(m.bytesAllocated).toBeLessThanOrEqual(cap);
    } finally {
      capped.destroy();
    }
  });

  it('reports bytes in use and live buffers', () => {
    const m0 = engine.memory();
    const t = engine.empty([1000]);
    const m1 = engine.memory();
    expect(m1.liveBuffers).toBe(m0.liveBuffers + 1);
    expect(m1.bytesInUse - m0.bytesInUse).toBeGreaterThanOrEqual(4000);
    t.dispose();
    expect(engine.memory().bytesInUse).toBe(m0.bytesInUse);
  });

  it('folds grids over 65535 workgroups into two dimensions (every element written)', async () => {
    const n = 65535 * 256 + 1000; // one more row of workgroups than one dimension allows
    const x = engine.full([n], -2);
    const y = activationForward(x, 'relu');
    const out = (await y.toArray()) as Float32Array;
    let bad = 0;
    for (let i = 0; i < n; i++) if (out[i] !== 0) bad++;
    expect(bad).toBe(0);
    x.dispose();
    y.dispose();
  });

  it('batches many dispatches per submit', async () => {
    const e = await Engine.create({ maxDispatchesPerSubmit: 64 });
    const x = e.full([16], 1);
    const s0 = e.submitCount;
    for (let i = 0; i < 128; i++) activationForward(x, 'relu').dispose();
    await e.sync();
    expect(e.submitCount - s0).toBeLessThanOrEqual(3);
    e.destroy();
  });

  it('raises a clear error for a tensor over one storage binding that cannot be split, never drops work', async () => {
    // An engine without NaN poisoning: filling the tensor would only slow the test down. Kernels split
    // larger tensors along the batch (test/large-tensors.test.ts); a single image over the limit is an error.
    const e = await Engine.create();
    const max = e.limits.maxStorageBufferBindingSize;
    const plane = 1024 * 1024 * 4;
    const shape = [1, Math.floor(max / plane) + 1, 1024, 1024]; // one image just over one binding
    if (shape[1] * plane > 2 ** 30) return e.destroy(); // this device binds over 1 GiB: nothing to check
    const big = e.empty(shape);
    const pool = () => maxPool2dForward(big, { kernel: [2, 2], stride: [2, 2] });
    expect(pool).toThrow(TensorTooLargeError);
    expect(pool).toThrow(/maxStorageBufferBindingSize/);
    big.dispose();
    e.destroy();
  });

  it('turns a WGSL compile error into an error carrying the compiler message and line', async () => {
    const e = await Engine.create();
    e.registerShader(
      'broken',
      ['@group(0) @binding(1) var<storage, read_write> a: array<f32>;', '@compute @workgroup_size(64)', 'fn main() {', '  a[0] = undefined_thing;', '}'].join('\n'),
    );
    const err = await e.compile('broken').catch((x) => x);
    expect(err).toBeInstanceOf(ShaderCompileError);
    expect(err.message).toMatch(/undefined_thing/);
    expect(err.message).toMatch(/broken\.wgsl:4:/);
    e.destroy();
  });

  it('surfaces validation errors with context instead of passing silently', async () => {
    const e = await Engine.create();
    const x = e.full([4], 1);
    // activation's forward entry binds 2 storage buffers; giving 3 is a validation error.
    e.dispatch({ shader: 'activation', entry: 'forward', constants: { ACT: 1 }, uniforms: [4, 0], bindings: [x, x, x], workgroups: [1], label: 'bad-dispatch' });
    const err = await e.sync().catch((z) => z);
    expect(err).toBeInstanceOf(GpuError);
    expect(err.message).toMatch(/validation/);
    expect(err.message).toMatch(/bad-dispatch/);
    e.destroy();
  });

  it('without an adapter, creation fails with the install hint', async () => {
    const err = await Engine.create({ dawnFlags: ['adapter=no-such-adapter-xyz'] }).catch((z) => z);
    expect(err).toBeInstanceOf(NoAdapterError);
    expect(err.message).toMatch(/install-software-gpu/);
  });

  it('tidy() disposes what the scope created except what it returns', () => {
    const kept = { disposed: 0, dispose() { this.disposed++; } };
    const dropped = { disposed: 0, dispose() { this.disposed++; } };
    const r = tidy(engine, () => {
      track(engine, kept);
      track(engine, dropped);
      return { kept };
    });
    expect(r.kept.disposed).toBe(0);
    expect(dropped.disposed).toBe(1);
    // engine.tidy/track (installed by src/nn/scope.ts) delegate to the same scopes
    const again = { disposed: 0, dispose() { this.disposed++; } };
    engine.tidy(() => void engine.track(again));
    expect(again.disposed).toBe(1);
  });

  it('scopes are per engine: a tidy() on one engine leaves tracked objects of another alone', async () => {
    const other = await Engine.create();
    try {
      const foreign = { disposed: 0, dispose() { this.disposed++; } };
      tidy(engine, () => void track(other, foreign));
      expect(foreign.disposed).toBe(0);
    } finally {
      other.destroy();
    }
  });

  it('importing the engine writes no WebGPU globals to globalThis', () => {
    for (const name of ['GPUBufferUsage', 'GPUMapMode', 'GPUShaderStage', 'GPUValidationError', 'GPUOutOfMemoryError', 'GPUDevice'])
      expect(name in globalThis, name).toBe(false);
  });

  it('refuses use after destroy with a clear error', async () => {
    const e = await Engine.create();
    e.destroy();
    expect(() => e.empty([1])).toThrow(/destroyed/);
  });
});
