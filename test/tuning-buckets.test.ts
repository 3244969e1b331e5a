// Tuned variant choices per shape bucket (src/kernels/registry.ts) and their cache file
// (src/kernels/tuning-cache.ts). No GPU work and no timing: bucket functions read only shapes, so the
// arguments are plain { shape } objects and the engine a stand-in with adapter info.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ALL_SHAPES, KernelRegistry, adapterKey, kernels, log2Bucket } from '../src/kernels/registry.js';
import { defaultCacheFile, loadTuned, readTuningCache, saveTuned } from '../src/kernels/tuning-cache.js';

const fakeEngine = (device: string, software = true) =>
  ({ info: { vendor: 'test', architecture: 'a', device, description: 'fake adapter', backend: 'none', software } }) as unknown as Engine;
const engine = fakeEngine('bucket-test');
const other = fakeEngine('other-adapter');
const KEY = adapterKey(engine);
const t = (...shape: number[]) => ({ shape });
const conv = { stride: [1, 1] as [number, number], padding: [0, 0] as [number, number] };

// The seed CNN's three conv layers (batch 32) and the DCGAN discriminator's strided conv.
const conv1 = [t(32, 1, 64, 64), t(32, 1, 3, 3), t(32), { ...conv, activation: 'relu' }];
const conv2 = [t(32, 32, 31, 31), t(64, 32, 3, 3), t(64), { ...conv, activation: 'relu' }];
const conv3 = [t(32, 64, 14, 14), t(128, 64, 3, 3), t(128), { ...conv, activation: 'relu' }];
const dcganD = [t(8, 64, 32, 32), t(128, 64, 4, 4), t(128), { stride: [2, 2], padding: [1, 1] }];

const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-buckets-'));
afterEach(() => {
  kernels.clearTuned(KEY);
  kernels.clearTuned(adapterKey(other));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('shape buckets', () => {
  it('log2Bucket rounds to the nearest power of two', () => {
    expect([1, 2, 3, 5, 6, 31, 64, 90, 91, 3200].map(log2Bucket)).toEqual([0, 1, 2, 2, 3, 5, 6, 6, 7, 12]);
    expect(log2Bucket(0)).toBe(0);
  });

  it('conv buckets: channels, kernel, stride and log2-rounded spatial size; the same for all three passes', () => {
    expect(kernels.bucketOf('conv2d.forward', conv1)).toBe('c1 o32 k3x3 s1x1 hw6x6');
    expect(kernels.bucketOf('conv2d.forward', conv2)).toBe('c32 o64 k3x3 s1x1 hw5x5');
    expect(kernels.bucketOf('conv2d.forward', conv3)).toBe('c64 o128 k3x3 s1x1 hw4x4');
    expect(kernels.bucketOf('conv2d.forward', dcganD)).toBe('c64 o128 k4x4 s2x2 hw5x5');
    // Batch and nearby spatial sizes share the bucket.
    expect(kernels.bucketOf('conv2d.forward', [t(8, 32, 33, 30), t(64, 32, 3, 3), null, conv])).toBe('c32 o64 k3x3 s1x1 hw5x5');
    expect(kernels.bucketOf('conv2d.backwardInput', [t(32, 64, 29, 29), t(64, 32, 3, 3), [32, 32, 31, 31], conv])).toBe('c32 o64 k3x3 s1x1 hw5x5');
    expect(kernels.bucketOf('conv2d.backwardWeight', [t(32, 32, 31, 31), t(32, 64, 29, 29), [64, 32, 3, 3], conv])).toBe('c32 o64 k3x3 s1x1 hw5x5');
    // conv-transpose weights are [Cin, Cout, k, k].
    const geo = { stride: [2, 2], padding: [1, 1] };
    expect(kernels.bucketOf('convTranspose2d.forward', [t(32, 128, 8, 8), t(128, 64, 4, 4), t(64), geo])).toBe('c128 o64 k4x4 s2x2 hw3x3');
    expect(kernels.bucketOf('convTranspose2d.backwardInput', [t(32, 64, 16, 16), t(128, 64, 4, 4), [32, 128, 8, 8], geo])).toBe('c128 o64 k4x4 s2x2 hw3x3');
    expect(kernels.bucketOf('convTranspose2d.backwardWeight', [t(32, 128, 8, 8), t(32, 64, 16, 16), [128, 64, 4, 4], geo])).toBe('c128 o64 k4x4 s2x2 hw3x3');
  });

  it('GEMM buckets: log2-rounded M, N, K (and batch) of the GEMM each op runs', () => {
    expect(kernels.bucketOf('matmul', [t(100, 300), t(300, 17)])).toBe('m7 n4 k8');
    expect(kernels.bucketOf('matmul', [t(300, 100), t(17, 300), { transA: true, transB: true }])).toBe('m7 n4 k8');
    expect(kernels.bucketOf('matmul', [t(4, 100, 300), t(300, 17)])).toBe('m7 n4 k8 b2');
    expect(kernels.bucketOf('linear.forward', [t(32, 3200), t(128, 3200), t(128)])).toBe('m5 n7 k12');
    expect(kernels.bucketOf('linear.backwardInput', [t(32, 128), t(128, 3200)])).toBe('m5 n12 k7');
    expect(kernels.bucketOf('linear.backwardWeight', [t(32, 3200), t(32, 128)])).toBe('m7 n12 k5');
  });

  it('ops without a bucket function have the single bucket ALL_SHAPES', () => {
    expect(kernels.bucketOf('elementwise.scale', [t(3, 4), 2])).toBe(ALL_SHAPES);
  });
});

describe('tuned choices per bucket', () => {
  it('a choice for one bucket is used for calls in it and not for others (they get the adapter-kind default)', () => {
    const op = 'conv2d.forward';
    const preferred = kernels.chosen(op, engine); // without tuning: preferred for software adapters
    const tuned = kernels.variants(op).find((v) => v !== preferred)!;
    kernels.setTuned(KEY, op, tuned, kernels.bucketOf(op, conv1));
    expect(kernels.chosen(op, engine, conv1)).toBe(tuned);
    expect(kernels.chosen(op, engine, [t(8, 1, 60, 70), t(32, 1, 3, 3), null, conv])).toBe(tuned); // same bucket
    expect(kernels.chosen(op, engine, conv2)).toBe(preferred);
    expect(kernels.chosen(op, engine, conv3)).toBe(preferred);
    expect(kernels.chosen(op, engine)).toBe(preferred); // no arguments: no bucket
    expect(kernels.chosen(op, other, conv1)).toBe(preferred); // another adapter
    kernels.withVariant(op, preferred, () => expect(kernels.chosen(op, engine, conv1)).toBe(preferred)); // forcing wins
  });

  it('kernels.get dispatches on the call arguments when an op has tuned buckets', () => {
    const reg = new KernelRegistry();
    const op = 'demo.gemm';
    reg.register(op, 'small', (a: { shape: number[] }) => `small ${a.shape}`);
    reg.register(op, 'large', (a: { shape: number[] }) => `large ${a.shape}`, { preferredOn: ['software'] });
    reg.setBucket(op, (a: { shape: number[] }) => (a.shape[0] < 64 ? 'small' : 'large'));
    expect(reg.get(op, engine)(t(8))).toBe('large 8'); // untuned: preferred
    reg.setTuned(KEY, op, 'small', 'small');
    const fn = reg.get(op, engine);
    expect(fn(t(8))).toBe('small 8');
    expect(fn(t(100))).toBe('large 100'); // untuned bucket: preferred
    expect(reg.get(op, engine, 'large')(t(8))).toBe('large 8'); // explicit variant
    expect(reg.get(op, other)(t(8))).toBe('large 8');
    // Arguments the bucket function cannot read fall back to the default (the kernel reports bad input).
    expect(() => reg.get(op, engine)(undefined)).toThrow(TypeError);
    expect(reg.tunedChoices(KEY, op)).toEqual({ small: 'small' });
  });
});

describe('tuning cache file', () => {
  it('round-trips choices per op and bucket, merging later saves, and loadTuned applies them', () => {
    const file = join(dir, 'nested', 'variants.json');
    const b1 = kernels.bucketOf('conv2d.forward', conv1);
    const b2 = kernels.bucketOf('conv2d.forward', conv2);
    const entry = (choices: Record<string, Record<string, string>>) => ({ adapter: 'fake adapter', updated: '2026-01-01T00:00:00Z', choices, timings: {}, shapes: {} });
    saveTuned(KEY, entry({ 'conv2d.forward': { [b1]: 'direct' } }), file);
    saveTuned(KEY, entry({ 'conv2d.forward': { [b2]: 'gemm-subgroup' }, 'elementwise.scale': { [ALL_SHAPES]: kernels.variants('elementwise.scale')[0] } }), file);
    saveTuned(adapterKey(other), entry({ 'conv2d.forward': { [b1]: 'gemm' } }), file);
    const cache = JSON.parse(readFileSync(file, 'utf8'));
    expect(cache.version).toBe(2);
    expect(readTuningCache(file)).toEqual(cache);
    const expected = {
      'conv2d.forward': { [b1]: 'direct', [b2]: 'gemm-subgroup' },
      'elementwise.scale': { [ALL_SHAPES]: kernels.variants('elementwise.scale')[0] },
    };
    expect(cache.adapters[KEY].choices).toEqual(expected);

    expect(loadTuned(engine, file)).toEqual(expected);
    expect(kernels.chosen('conv2d.forward', engine, conv1)).toBe('direct');
    expect(kernels.chosen('conv2d.forward', engine, conv2)).toBe('gemm-subgroup');
    expect(kernels.chosen('elementwise.scale', engine)).toBe(expected['elementwise.scale'][ALL_SHAPES]);

    // The default path comes from WGSL_NN_TUNE_CACHE.
    kernels.clearTuned(KEY);
    const previous = process.env.WGSL_NN_TUNE_CACHE;
    process.env.WGSL_NN_TUNE_CACHE = file;
    try {
      expect(defaultCacheFile()).toBe(file);
      expect(loadTuned(engine)).toEqual(expected);
    } finally {
      if (previous === undefined) delete process.env.WGSL_NN_TUNE_CACHE;
      else process.env.WGSL_NN_TUNE_CACHE = previous;
    }
    expect(loadTuned(engine, join(dir, 'missing.json'))).toEqual({});
  });
});
