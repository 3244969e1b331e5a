import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import '../src/kernels/maxpool2d.js';
import type { Pool2dParams } from '../src/kernels/maxpool2d.js';
import { kernels } from '../src/kernels/registry.js';
import { maxPool2dBackwardRef, maxPool2dRef } from '../src/kernels/reference/maxpool2d.js';
import { dot, expectClose, numericalGrad, randArray, rng, testEngine } from './helpers.js';
import { expectRef, refCases, refData, refTol } from './torch-ref.js';

// Tolerances: max pooling selects values, so y and argmax are exact; dx sums at most
// ceil(kh/sh)*ceil(kw/sw) dy values in a different order than the reference: 1e-6 relative.
// GPU finite differences: distinct inputs on a grid of spacing 0.05 and h = 1e-2 (no argmax flips);
// y is piecewise linear so the only error is float32 rounding of sum(dy*y) / 2h: 1e-3 absolute.
const TOL = 1e-6;
const FD_TOL = 1e-3;

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

/** Distinct values: a shuffled grid k * 0.05 (so neighbours differ by >= 0.05), centred at 0. */
function distinct(seed: number, n: number): Float32Array {
  const r = rng(seed);
  const v = Array.from({ length: n }, (_, i) => (i - n / 2) * 0.05);
  r.shuffle(v);
  return Float32Array.from(v);
}

const P = (k: number | [number, number], s: number | [number, number]): Pool2dParams => ({
  kernel: typeof k === 'number' ? [k, k] : k,
  stride: typeof s === 'number' ? [s, s] : s,
});

// Covers batch 1 and 3; channels 1, 3, 5; 7x9 and 13x11; kernels 1, 2, 3, 5 (and non-square);
// strides 1 and 2 (overlapping windows when kernel > stride; uncovered rows/cols in floor mode); even
// and odd widths.
const cases: [number[], Pool2dParams][] = [
  [[1, 1, 7, 9], P(2, 2)],
  [[3, 3, 7, 9], P(3, 1)],
  [[3, 5, 13, 11], P(3, 2)],
  [[1, 3, 13, 11], P(5, 2)],
  [[3, 1, 13, 11], P(5, 1)],
  [[1, 5, 7, 9], P(1, 1)],
  [[1, 3, 7, 9], P(1, 2)],
  [[3, 3, 8, 8], P(2, 2)],
  [[1, 5, 13, 11], P([3, 2], [1, 2])],
  [[3, 2, 7, 9], P([2, 5], [2, 1])],
  [[1, 1, 5, 5], P(5, 5)],
  // Even widths with kw = sw = 2: each window row read as one vec2 (PAIRS), also with kh != 2.
  [[2, 3, 9, 10], P([3, 2], [1, 2])],
  [[3, 2, 6, 12], P(2, 2)],
];

describe.each(kernels.variants('maxPool2d.forward'))('maxPool2d (%s)', (variant) => {
  const fwd = () => kernels.get('maxPool2d.forward', engine, variant);
  const bwdVariants = kernels.variants('maxPool2d.backward');

  for (const [shape, p] of cases) {
    it(`${JSON.stringify(shape)} k${p.kernel} s${p.stride} matches the reference`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const r = rng(n + p.kernel[0]);
      const x = randArray(r, n);
      const ref = maxPool2dRef(x, shape, p);
      const { y, argmax } = fwd()(engine.fromArray(x, shape), p);
      expect(y.shape).toEqual(ref.shape);
      expect(argmax.shape).toEqual(ref.shape);
      expect(argmax.dtype).toBe('i32');
      expectClose(await y.toArray(), ref.y, 0, 'y');
      expect(Array.from(await argmax.toArray())).toEqual(Array.from(ref.argmax));
      const dy = randArray(r, y.size);
      for (const bv of bwdVariants) {
        const dx = kernels.get('maxPool2d.backward', engine, bv)(engine.fromArray(dy, ref.shape), argmax, shape, p);
        expect(dx.shape).toEqual(shape);
        expectClose(await dx.toArray(), maxPool2dBackwardRef(x, shape, dy, p), TOL, `dx (${bv})`);
      }
    });
  }

  // The folded ReLU (p.relu) against the unfolded chain on the CPU: relu first, then the pool; dx is the
  // pool's backward of relu(x), times relu'(x). The argmax may differ where a whole window is <= 0 (all
  // ReLU outputs tie at 0), but there the gradient is 0 either way, so y and dx must agree exactly.
  for (const [shape, p] of cases) {
    it(`${JSON.stringify(shape)} k${p.kernel} s${p.stride} with a folded ReLU matches relu then pool`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const r = rng(n + 7 * p.kernel[1]);
      const x = randArray(r, n);
      const xRelu = Array.from(x, (v) => Math.max(v, 0));
      const ref = maxPool2dRef(xRelu, shape, p);
      const pr = { ...p, relu: true };
      const { y, argmax } = fwd()(engine.fromArray(x, shape), pr);
      expectClose(await y.toArray(), ref.y, 0, 'y');
      // Small windows have all-negative ones here (the gate is exercised: their dy must not pass).
      if (p.kernel[0] * p.kernel[1] <= 4 && y.size >= 40) expect(Array.from(await y.toArray()).filter((v) => v === 0).length).toBeGreaterThan(0);
      const dy = randArray(r, y.size);
      const dxRef = maxPool2dBackwardRef(xRelu, shape, dy, p).map((g, i) => (x[i] > 0 ? g : 0));
      for (const bv of bwdVariants) {
        const dx = kernels.get('maxPool2d.backward', engine, bv)(engine.fromArray(dy, ref.shape), argmax, shape, pr, y);
        expectClose(await dx.toArray(), dxRef, TOL, `dx (${bv})`);
      }
      expect(() => kernels.get('maxPool2d.backward', engine)(engine.fromArray(dy, ref.shape), argmax, shape, pr)).toThrow(/with a folded ReLU, the forward's output y/);
    });
  }

  it('ties: the first maximum in row-major window order wins (constant input)', async () => {
    const shape = [1, 2, 5, 6];
    const p = P(3, 2);
    const x = new Float32Array(60).fill(0.25);
    const { y, argmax } = fwd()(engine.fromArray(x, shape), p);
    const ref = maxPool2dRef(x, shape, p);
    // Every window picks its top-left element.
    expect(Array.from(await argmax.toArray())).toEqual([0, 2, 12, 14, 0, 2, 12, 14]);
    expect(Array.from(await argmax.toArray())).toEqual(Array.from(ref.argmax));
    expectClose(await y.toArray(), ref.y, 0, 'y');
    // Overlapping windows that tie on a shared element all route their gradient there.
    const dy = new Float32Array(8).fill(1);
    const dx = kernels.get('maxPool2d.backward', engine)(engine.fromArray(dy, ref.shape), argmax, shape, p);
    expectClose(await dx.toArray(), maxPool2dBackwardRef(x, shape, dy, p), 0, 'dx');
  });

  it('ties inside a window: the earlier of two equal maxima wins', async () => {
    // 2x4 input, 2x2 windows stride 2: window 0 has its max 3 at (0,1) and (1,0); window 1 at (1,2),(1,3).
    const x = new Float32Array([1, 3, 0, 0, 3, 2, 5, 5]);
    const { argmax } = fwd()(engine.fromArray(x, [1, 1, 2, 4]), P(2, 2));
    expect(Array.from(await argmax.toArray())).toEqual([1, 6]);
  });

  it('NaN wins and propagates; an all -inf window picks its first element', async () => {
    const x = new Float32Array([1, NaN, 2, 3, -Infinity, -Infinity, -Infinity, -Infinity, 7, 5, NaN, 9]);
    // [1,1,3,4] with 1x2 windows stride 2: windows (1,NaN), (2,3), (-inf,-inf), (-inf,-inf), (7,5), (NaN,9)
    const { y, argmax } = fwd()(engine.fromArray(x, [1, 1, 3, 4]), P([1, 2], [1, 2]));
    const ref = maxPool2dRef(x, [1, 1, 3, 4], P([1, 2], [1, 2]));
    const got = Array.from(await y.toArray());
    expect(got).toEqual([NaN, 3, -Infinity, -Infinity, 7, NaN]);
    expect(got).toEqual(Array.from(ref.y));
    expect(Array.from(await argmax.toArray())).toEqual([1, 3, 4, 6, 8, 10]);
    expect(Array.from(await argmax.toArray())).toEqual(Array.from(ref.argmax));
  });

  it('GPU backward agrees with float32 finite differences of the GPU forward', async () => {
    const shape = [1, 2, 7, 9];
    const p = P(3, 2);
    const x = distinct(17, 126);
    const { y, argmax } = fwd()(engine.fromArray(x, shape), p);
    const dy = randArray(rng(2), y.size);
    const dx = await kernels.get('maxPool2d.backward', engine)(engine.fromArray(dy, y.shape), argmax, shape, p).toArray();
    const h = 1e-2;
    for (let i = 0; i < 126; i += 5) {
      const xp = Float32Array.from(x);
      const xm = Float32Array.from(x);
      xp[i] += h;
      xm[i] -= h;
      const fp = dot(await fwd()(engine.fromArray(xp, shape), p).y.toArray(), dy);
      const fm = dot(await fwd()(engine.fromArray(xm, shape), p).y.toArray(), dy);
      expect(Math.abs((fp - fm) / (xp[i] - xm[i]) - dx[i]), `dx[${i}]`).toBeLessThanOrEqual(FD_TOL);
    }
  });

  for (const c of refCases('max_pool2d')) {
    it(`torch reference ${c.id}`, async () => {
      const shape = c.inputs.x.shape;
      const p: Pool2dParams = { kernel: c.params.kernel, stride: c.params.stride };
      const { y, argmax } = fwd()(engine.fromArray(refData(c.inputs.x), shape), p);
      expect(y.shape).toEqual([shape[0], shape[1], ...c.params.out_hw]);
      expectRef(await y.toArray(), c.outputs.y, refTol(c, 'y'), `${c.id} y`);
      for (const bv of bwdVariants) {
        const dx = kernels.get('maxPool2d.backward', engine, bv)(engine.fromArray(refData(c.upstream!.dy), y.shape), argmax, shape, p);
        expectRef(await dx.toArray(), c.grads.dx, refTol(c, 'dx'), `${c.id} dx`);
      }
    });
  }

  it('rejects bad shapes and parameters', () => {
    const x = engine.fromArray(new Float32Array(12), [1, 1, 3, 4]);
    expect(() => fwd()(x, P(5, 1))).toThrow(ShapeError);
    expect(() => fwd()(x, P(2, 0))).toThrow(ShapeError);
    expect(() => fwd()(engine.fromArray(new Float32Array(12), [3, 4]), P(2, 2))).toThrow(ShapeError);
    const { y, argmax } = fwd()(x, P(2, 2));
    expect(() => kernels.get('maxPool2d.backward', engine)(y, argmax, [1, 1, 5, 4], P(2, 2))).toThrow(ShapeError);
    expect(() => kernels.get('maxPool2d.backward', engine)(y, y, [1, 1, 3, 4], P(2, 2))).toThrow(ShapeError);
  });
});

describe('maxPool2d reference', () => {
  it('backward reference agrees with float64 finite differences', () => {
    for (const [shape, p] of [
      [[2, 2, 7, 9], P(3, 2)],
      [[1, 1, 6, 6], P(2, 2)],
      [[1, 2, 5, 7], P(3, 1)],
    ] as [number[], Pool2dParams][]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = Array.from(distinct(n, n));
      const { y } = maxPool2dRef(x, shape, p);
      const dy = Array.from(randArray(rng(1), y.length));
      const num = numericalGrad((xs) => dot(maxPool2dRef(xs, shape, p).y, dy), x, 1e-6);
      expectClose(maxPool2dBackwardRef(x, shape, dy, p), num, 1e-7, `${JSON.stringify(shape)} k${p.kernel} s${p.stride}`);
    }
  });
});
