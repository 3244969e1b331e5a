import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import '../src/kernels/random.js';
import { kernels } from '../src/kernels/registry.js';
import { randomNormalRef, randomUniformRef } from '../src/kernels/reference/dropout.js';
import { expectClose, testEngine } from './helpers.js';
import { randomNormalOp, randomUniformOp } from '../src/kernels/random.js';

// Tolerances:
//  - uniform vs the CPU Philox reference: relative error 1e-6 (u is exact in float32; lo + (hi-lo) u
//    is one or two float32 roundings).
//  - normal vs the CPU reference: relative error 3e-4 of max|z| (~5.8). WGSL only bounds log() near 1
//    by an absolute 2^-21, which for u1 within a few 2^-24 of 1 moves r = sqrt(-2 ln u1) by up to
//    ~1e-3 absolute; sin/cos carry 2^-11 absolute bounds on [-pi, pi]. The statistics are unaffected.
//  - statistics on n = 1e5 (2e5) samples: sample means within 5 standard errors, sample standard
//    deviations within 1% (about 7 standard errors), the fraction of |z| < 1 and < 2 within 5
//    binomial standard deviations (a false failure has probability < 1e-5 per check).
type Uniform = (e: Engine, shape: readonly number[], seed: number, lo?: number, hi?: number) => DeviceTensor;
type Normal = (e: Engine, shape: readonly number[], seed: number, mean?: number, std?: number) => DeviceTensor;

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

function moments(a: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  const mean = s / a.length;
  let q = 0;
  for (let i = 0; i < a.length; i++) q += (a[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / (a.length - 1)) };
}

const shapes = [[1], [3], [5], [3, 5], [1, 1, 7, 9], [3, 3, 13, 11], [1, 5, 13, 11]];

describe.each(kernels.variants('random.uniform'))('randomUniform (%s)', (variant) => {
  const uniform = () => randomUniformOp.get(engine, variant);

  for (const shape of shapes) {
    it(`${JSON.stringify(shape)} matches the CPU Philox reference`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const t = uniform()(engine, shape, 7 + n, -3, 5);
      expect(t.shape).toEqual(shape);
      expectClose(await t.toArray(), randomUniformRef(n, 7 + n, -3, 5), 1e-6, 'uniform');
      t.dispose();
    });
  }

  it('defaults to [0, 1); same seed same values, other seeds other values', async () => {
    const a = await uniform()(engine, [1000], 5).toArray();
    const b = await uniform()(engine, [1000], 5).toArray();
    const c = await uniform()(engine, [1000], 6).toArray();
    expect(Array.from(b)).toEqual(Array.from(a));
    let same = 0;
    for (let i = 0; i < a.length; i++) same += a[i] === c[i] ? 1 : 0;
    expect(same).toBeLessThan(3);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...a)).toBeLessThan(1);
  });

  it('mean and standard deviation of 1e5 samples are within statistical bounds', async () => {
    const n = 100_000;
    const [lo, hi] = [-2, 6];
    const a = await uniform()(engine, [n], 123, lo, hi).toArray();
    const { mean, std } = moments(a);
    const sigma = (hi - lo) / Math.sqrt(12);
    expect(Math.abs(mean - (lo + hi) / 2)).toBeLessThan((5 * sigma) / Math.sqrt(n));
    expect(Math.abs(std / sigma - 1)).toBeLessThan(0.01);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(lo);
    expect(Math.max(...a)).toBeLessThan(hi);
    // Ten equal bins each hold a tenth, within 5 binomial standard deviations.
    const bins = new Array(10).fill(0);
    for (const v of a) bins[Math.floor(((v - lo) / (hi - lo)) * 10)]++;
    for (const b of bins) expect(Math.abs(b - n / 10)).toBeLessThan(5 * Math.sqrt(n * 0.1 * 0.9));
  });
});

describe.each(kernels.variants('random.normal'))('randomNormal (%s)', (variant) => {
  const normal = () => randomNormalOp.get(engine, variant);

  for (const shape of shapes) {
    it(`${JSON.stringify(shape)} matches the CPU Box-Muller reference`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const t = normal()(engine, shape, 11 + n, 0.5, 2);
      expectClose(await t.toArray(), randomNormalRef(n, 11 + n, 0.5, 2), 3e-4, 'normal');
      t.dispose();
    });
  }

  it('same seed same values; uniform and normal streams of one seed are unrelated', async () => {
    const a = await normal()(engine, [2000], 9).toArray();
    const b = await normal()(engine, [2000], 9).toArray();
    expect(Array.from(b)).toEqual(Array.from(a));
    const u = await randomUniformOp.get(engine)(engine, [2000], 9).toArray();
    // Correlation of the normal values with the uniform ones of the same seed: ~N(0, 1/sqrt(2000)).
    const mu = moments(u);
    const ma = moments(a);
    let cov = 0;
    for (let i = 0; i < a.length; i++) cov += (a[i] - ma.mean) * (u[i] - mu.mean);
    const corr = cov / (a.length - 1) / (ma.std * mu.std);
    expect(Math.abs(corr)).toBeLessThan(5 / Math.sqrt(2000));
  });

  it('mean, standard deviation and tail fractions of 2e5 samples are within statistical bounds', async () => {
    const n = 200_000;
    const [m0, s0] = [1.5, 0.25];
    const a = await normal()(engine, [n], 77, m0, s0).toArray();
    const { mean, std } = moments(a);
    expect(Math.abs(mean - m0)).toBeLessThan((5 * s0) / Math.sqrt(n));
    expect(Math.abs(std / s0 - 1)).toBeLessThan(0.01);
    for (const [k, frac] of [
      [1, 0.682689492],
      [2, 0.954499736],
    ]) {
      let inside = 0;
      for (const v of a) inside += Math.abs(v - m0) < k * s0 ? 1 : 0;
      expect(Math.abs(inside - n * frac), `|z| < ${k}`).toBeLessThan(5 * Math.sqrt(n * frac * (1 - frac)));
    }
    // Every value is finite (u1 is never 0, so log never sees 0).
    expect(a.every(Number.isFinite)).toBe(true);
  });
});
