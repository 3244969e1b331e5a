import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import '../src/kernels/reduce.js';
import { kernels } from '../src/kernels/registry.js';
import { meanRef, sumRef, sumToShapeRef } from '../src/kernels/reference/reduce.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';

// Tolerances. Each output is a tree of serial float32 sums of <= 256 terms (log_256 R levels). For
// random signs the result can cancel, so errors are measured against sum|x| (the natural scale of a
// summation's rounding error): |got - exp| <= 1e-6 * sum|x| per output. For the large 32*224*224 case
// with positive inputs (no cancellation) the relative error must be <= 1e-5 (observed ~1e-7).
const SUM_REL_TO_ABS = 1e-6;

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

function expectSumClose(got: ArrayLike<number>, exp: ArrayLike<number>, absScale: ArrayLike<number>, what: string): void {
  expect(got.length, `${what}: length`).toBe(exp.length);
  for (let i = 0; i < exp.length; i++) {
    const err = Math.abs(got[i] - exp[i]);
    if (!(err <= SUM_REL_TO_ABS * Math.max(absScale[i], 1e-30)))
      throw new Error(`${what}: element ${i}: got ${got[i]}, expected ${exp[i]} (scale ${absScale[i]})`);
  }
}

const cases: { shape: number[]; axes: number[] | null }[] = [
  { shape: [7], axes: null },
  { shape: [], axes: null },
  { shape: [3, 5, 7, 9], axes: null },
  { shape: [3, 5, 7, 9], axes: [0] },
  { shape: [3, 5, 7, 9], axes: [-1] },
  { shape: [3, 5, 13, 11], axes: [0, 2, 3] }, // bias gradient (R K R after merging)
  { shape: [1, 3, 13, 11], axes: [0, 2, 3] },
  { shape: [3, 5, 7, 9], axes: [1, 3] }, // K R K R
  { shape: [3, 5, 7, 9], axes: [0, 2] }, // R K R K
  { shape: [2, 3, 4, 5, 6, 7], axes: [0, 2, 4] }, // 6 dims, alternating
  { shape: [2, 3, 4, 5, 6, 7], axes: [1, 3, 5] },
  { shape: [5, 1, 3], axes: [1] }, // reducing a size-1 axis: a copy
  { shape: [3, 4], axes: [] }, // no axes: a copy
  { shape: [1000, 3], axes: [0] }, // multi-level with a strided reduced dim
  { shape: [3, 2000], axes: [1] }, // multi-level, M > 1
  { shape: [70000], axes: null }, // three levels
  { shape: [70000, 2], axes: [0] }, // kept innermost: partials laid out [parts, M], two levels
];

describe.each(kernels.variants('reduce.sum'))('reduce (%s)', (variant) => {
  for (const { shape, axes } of cases) {
    for (const keepDims of [false, true]) {
      it(`sum/mean ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keepDims=${keepDims}`, async () => {
        const n = shape.reduce((p, d) => p * d, 1);
        const x = randArray(rng(n + 3), n, 2);
        const xt = engine.fromArray(x, shape);
        const rank = shape.length;
        const mask = shape.map((_, i) => axes === null || axes.some((a) => (a < 0 ? a + rank : a) === i));
        const expShape = keepDims ? shape.map((d, i) => (mask[i] ? 1 : d)) : shape.filter((_, i) => !mask[i]);
        const absScale = sumRef(x.map(Math.abs), shape, axes);
        const count = shape.reduce((p, d, i) => (mask[i] ? p * d : p), 1);

        const s = kernels.get('reduce.sum', engine, variant)(xt, axes, keepDims);
        expect(s.shape).toEqual(expShape);
        expectSumClose(await s.toArray(), sumRef(x, shape, axes), absScale, 'sum');
        const m = kernels.get('reduce.mean', engine, variant)(xt, axes, keepDims);
        expect(m.shape).toEqual(expShape);
        expectSumClose(await m.toArray(), meanRef(x, shape, axes), absScale.map((v) => v / count), 'mean');
        for (const t of [xt, s, m]) t.dispose();
      });
    }
  }

  it('sum over 32*224*224 elements (positive values) to 1e-5 relative; mean too', async () => {
    const shape = [32, 1, 224, 224];
    const n = 32 * 224 * 224;
    const r = rng(11);
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = r.next();
    const xt = engine.fromArray(x, shape);
    const exp = sumRef(x, shape, null)[0];
    await engine.sync(); // upload first, so the timing below is the reduction and one 4-byte readback
    const t0 = performance.now();
    const s = kernels.get('reduce.sum', engine, variant)(xt, null);
    const got = (await s.toArray())[0];
    const ms = performance.now() - t0;
    expect(Math.abs(got - exp) / exp, `sum ${got} vs ${exp}`).toBeLessThanOrEqual(1e-5);
    const m = kernels.get('reduce.mean', engine, variant)(xt, null);
    expect(Math.abs((await m.toArray())[0] - exp / n) / (exp / n)).toBeLessThanOrEqual(1e-5);
    // Per-channel style: [32, 224*224] summed over the last axis, and over the batch axis.
    const rows = kernels.get('reduce.sum', engine, variant)(xt, [1, 2, 3]);
    expectClose(await rows.toArray(), sumRef(x, shape, [1, 2, 3]), 1e-5, 'per-image sums');
    const cols = kernels.get('reduce.sum', engine, variant)(xt, [0]);
    expectClose(await cols.toArray(), sumRef(x, shape, [0]), 1e-5, 'batch sums');
    console.log(`[reduce] sum of ${n} elements: ${ms.toFixed(1)} ms (3 dispatches + readback), relative error ${(Math.abs(got - exp) / exp).toExponential(2)}`);
    for (const t of [xt, s, m, rows, cols]) t.dispose();
  });

  it('rejects bad axes with a ShapeError', () => {
    const xt = engine.fromArray(new Float32Array(6), [2, 3]);
    expect(() => kernels.get('reduce.sum', engine, variant)(xt, [2])).toThrow(ShapeError);
    expect(() => kernels.get('reduce.sum', engine, variant)(xt, [-3])).toThrow(ShapeError);
    expect(() => kernels.get('reduce.sum', engine, variant)(xt, [1, -1])).toThrow(ShapeError);
    xt.dispose();
  });
});

describe.each(kernels.variants('reduce.sumToShape'))('reduce.sumToShape (%s)', (variant) => {
  const targets: [number[], number[]][] = [
    [[3, 5, 13, 11], [1, 5, 1, 1]],
    [[3, 5, 13, 11], [5, 1, 1]],
    [[3, 5, 7, 9], []],
    [[3, 5, 7, 9], [9]],
    [[3, 5, 7, 9], [3, 1, 7, 1]],
    [[3, 4, 5], [3, 1, 5]],
    [[3, 4, 5], [3, 4, 5]],
    [[1, 3, 7, 9], [1, 1, 1, 1]],
  ];
  for (const [shape, target] of targets) {
    it(`${JSON.stringify(shape)} -> ${JSON.stringify(target)}`, async () => {
      const n = shape.reduce((p, d) => p * d, 1);
      const x = randArray(rng(n), n);
      const y = kernels.get('reduce.sumToShape', engine, variant)(engine.fromArray(x, shape), target);
      expect(y.shape).toEqual(target);
      expectSumClose(await y.toArray(), sumToShapeRef(x, shape, target), sumToShapeRef(x.map(Math.abs), shape, target), 'sumToShape');
    });
  }

  it('rejects a shape that does not broadcast', () => {
    const xt = engine.fromArray(new Float32Array(12), [3, 4]);
    expect(() => kernels.get('reduce.sumToShape', engine, variant)(xt, [5])).toThrow(ShapeError);
    expect(() => kernels.get('reduce.sumToShape', engine, variant)(xt, [2, 3, 4])).toThrow(ShapeError);
  });
});
