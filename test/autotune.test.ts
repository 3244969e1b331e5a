// Autotune (bench/tuner.ts): measured variant choices are valid, cached per adapter and shape bucket
// (src/kernels/tuning-cache.ts) and re-applied by loadTuned; a variant that throws or disagrees with the
// reference variant (relative error > 1e-3) is never chosen. (Bucket lookup: test/tuning-buckets.test.ts.)
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { caseData, resultTensors, type KernelCase } from '../bench/kernel-cases.js';
import { autotune, caseArgs } from '../bench/tuner.js';
import { adapterKey, ALL_SHAPES, kernels } from '../src/kernels/registry.js';
import { defaultCacheFile, loadTuned } from '../src/kernels/tuning-cache.js';
import { elementwiseScaleOp } from '../src/kernels/elementwise.js';

let engine: Engine;
let dir: string;

beforeAll(async () => {
  engine = await Engine.create();
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-autotune-'));
});
afterAll(() => {
  kernels.clearTuned(adapterKey(engine));
  engine.destroy();
  rmSync(dir, { recursive: true, force: true });
});

type Scale = (x: DeviceTensor, alpha: number, beta?: number) => DeviceTensor;
const scale = (x: DeviceTensor, a: number) => elementwiseScaleOp.get(x.engine, 'chunked')(x, a, 0);

// A test op y = 2x with a slow correct variant (registered first: the reference), a fast correct one,
// one that skips the work and returns wrong values (fastest of all), and one that throws.
const OP = 'autotune-test.double';
kernels.register(OP, 'reference', (x: DeviceTensor) => {
  let y = scale(x, 1);
  for (let i = 0; i < 6; i++) {
    const next = scale(y, 1);
    y.dispose();
    y = next;
  }
  const out = scale(y, 2);
  y.dispose();
  return out;
});
kernels.register(OP, 'broken', (x: DeviceTensor) => x.engine.full(x.shape, 1));
kernels.register(OP, 'slightly-off', (x: DeviceTensor) => scale(x, 2.01)); // relative error 5e-3 > 1e-3
kernels.register(OP, 'throws', () => {
  throw new Error('this variant always fails');
});
kernels.register(OP, 'fast', (x: DeviceTensor) => scale(x, 2));

// First registered variant fails: the next working one is the reference.
const OP2 = 'autotune-test.first-fails';
kernels.register(OP2, 'throws', () => {
  throw new Error('first variant fails');
});
kernels.register(OP2, 'ok', (x: DeviceTensor) => scale(x, 3));

const N = 1 << 19;
const testCase = (op: string): KernelCase => ({
  op,
  shape: `[${N}]`,
  params: { n: N },
  prepare(e) {
    const x = e.fromArray(caseData(N, 7), [N]);
    return { run: (fn) => resultTensors(fn(x)), inPlace: [], dispose: () => x.dispose() };
  },
});

describe('autotune', () => {
  it('chooses valid variants, writes the cache, and loadTuned re-applies it', async () => {
    const cacheFile = join(dir, 'nested', 'variants.json');
    const ops = ['matmul', 'elementwise.binary'];
    const chosen = await autotune(engine, { ops, quick: true, cacheFile });
    expect(Object.keys(chosen).sort()).toEqual([...ops].sort());
    for (const op of ops) {
      const buckets = Object.entries(chosen[op]);
      expect(buckets).toHaveLength(1); // one quick tuning case per op
      for (const [bucket, variant] of buckets) {
        expect(kernels.variants(op)).toContain(variant);
        expect(kernels.tunedChoices(adapterKey(engine), op)[bucket]).toBe(variant);
      }
    }
    // matmul's bucket is its log2-rounded sizes; the case's own call resolves to the tuned choice.
    const mm = (await import('../bench/tuner.js')).tuningCases(true).find((c) => c.op === 'matmul')!;
    expect(Object.keys(chosen.matmul)).toEqual(['m7 n7 k7']);
    expect(kernels.chosen('matmul', engine, caseArgs(engine, mm))).toBe(chosen.matmul['m7 n7 k7']);
    expect(existsSync(cacheFile)).toBe(true);
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8'));
    expect(cache.adapters[adapterKey(engine)].choices).toEqual(chosen);

    // Forget, then re-apply from the file without measuring.
    kernels.clearTuned(adapterKey(engine));
    const applied = loadTuned(engine, cacheFile);
    expect(applied).toEqual(chosen);
    for (const op of ops) expect(kernels.tunedChoices(adapterKey(engine), op)).toEqual(chosen[op]);

    // A second run for another op merges into the same adapter entry.
    await autotune(engine, { ops: [OP2], cases: [testCase(OP2)], cacheFile });
    const merged = JSON.parse(readFileSync(cacheFile, 'utf8')).adapters[adapterKey(engine)].choices;
    expect(merged).toEqual({ ...chosen, [OP2]: { [ALL_SHAPES]: 'ok' } });
  });

  it('never chooses a variant that throws or disagrees with the reference', async () => {
    const cacheFile = join(dir, 'fake.json');
    const results: { variant: string; ms: number | null; rejected?: string }[] = [];
    const chosen = await autotune(engine, { ops: [OP], cases: [testCase(OP)], cacheFile, onResult: (r) => results.push(r) });
    expect(chosen[OP]).toEqual({ [ALL_SHAPES]: 'fast' }); // 1 dispatch against the reference's 8
    expect(kernels.chosen(OP, engine)).toBe('fast');
    const byName = Object.fromEntries(results.map((r) => [r.variant, r]));
    expect(byName.broken.ms).toBeNull();
    expect(byName.broken.rejected).toMatch(/disagrees/);
    expect(byName['slightly-off'].rejected).toMatch(/disagrees/);
    expect(byName.throws.rejected).toMatch(/failed: this variant always fails/);
    expect(byName.reference.ms).toBeGreaterThan(0);
    const timings = JSON.parse(readFileSync(cacheFile, 'utf8')).adapters[adapterKey(engine)].timings[OP][ALL_SHAPES];
    expect(timings.broken).toBeNull();
    expect(timings.throws).toBeNull();

    // The first variant failing: the next working one is the reference and is chosen.
    const c2 = await autotune(engine, { ops: [OP2], cases: [testCase(OP2)], cacheFile });
    expect(c2[OP2]).toEqual({ [ALL_SHAPES]: 'ok' });
  });

  it('loadTuned reads a version-1 file, skips unknown ops and variants; the cache path comes from WGSL_NN_TUNE_CACHE', () => {
    const cacheFile = join(dir, 'hand-written.json');
    writeFileSync(
      cacheFile,
      JSON.stringify({
        version: 1,
        adapters: {
          [adapterKey(engine)]: { choices: { matmul: 'no-such-variant', 'no.such.op': 'x', [OP]: 'reference' } },
          'another|adapter': { choices: { [OP]: 'broken' } },
        },
      }),
    );
    kernels.clearTuned(adapterKey(engine));
    expect(loadTuned(engine, cacheFile)).toEqual({ [OP]: { [ALL_SHAPES]: 'reference' } });
    expect(kernels.chosen(OP, engine)).toBe('reference');
    expect(loadTuned(engine, join(dir, 'missing.json'))).toEqual({});

    const previous = process.env.WGSL_NN_TUNE_CACHE;
    process.env.WGSL_NN_TUNE_CACHE = cacheFile;
    try {
      expect(defaultCacheFile()).toBe(cacheFile);
      kernels.clearTuned(adapterKey(engine));
      expect(loadTuned(engine)).toEqual({ [OP]: { [ALL_SHAPES]: 'reference' } });
    } finally {
      if (previous === undefined) delete process.env.WGSL_NN_TUNE_CACHE;
      else process.env.WGSL_NN_TUNE_CACHE = previous;
    }
  });
});
