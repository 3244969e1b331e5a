import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import '../src/kernels/softmax.js';
import { kernels } from '../src/kernels/registry.js';
import { softmaxBackwardRef, softmaxRef } from '../src/kernels/reference/softmax.js';
import { dot, expectClose, numericalGrad, randArray, rng, testEngine } from './helpers.js';
import { expectRef, refCases, refData, refTol } from './torch-ref.js';

// Tolerances: y is exp/sum in float32: a few ulp relative, checked at 1e-5 of max|y|. dx = y (dy - <dy,y>)
// cancels inside the bracket, so it is checked at 1e-5 of max|dx| plus an absolute 1e-6 * max|dy|
// (float32 rounding of <dy,y>, ~k ulp, times y <= 1).
const TOL = 1e-5;
// GPU finite differences: float32 forward, central differences with h = 1e-2 on x of order 1, compared
// with the float32 backward: truncation O(h^2) ~ 1e-4 and float32 rounding of the sum ~ 1e-7/h: 2e-3.
const FD_TOL = 2e-3;

const shapes = [[1, 1], [1, 7], [3, 5], [3, 13, 11], [5, 9], [2, 3, 7, 9], [257, 3], [4, 100]];

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

describe.each(kernels.variants('softmax.forward'))('softmax (%s)', (variant) => {
  const fwd = () => kernels.get('softmax.forward', engine, variant);
  const bwd = () => kernels.get('softmax.backward', engine, kernels.variants('softmax.backward').includes(variant) ? variant : undefined);

  for (const shape of shapes) {
    it(`${JSON.stringify(shape)} forward and backward match the reference`, async () => {
      const n = shape.reduce((p, d) => p * d, 1);
      const k = shape[shape.length - 1];
      const r = rng(n);
      const x = randArray(r, n, 5);
      const dy = randArray(r, n);
      const xt = engine.fromArray(x, shape);
      const y = fwd()(xt);
      expect(y.shape).toEqual(shape);
      expectClose(await y.toArray(), softmaxRef(x, k), TOL, 'y');
      const dx = bwd()(y, engine.fromArray(dy, shape));
      expectClose(await dx.toArray(), softmaxBackwardRef(x, dy, k), TOL, 'dx', 1e-6);
    });
  }

  it('rows holding +-100 and -1000 do not overflow', async () => {
    const x = new Float32Array([100, -100, 99, 0, -1000, 100, 1000, 999, -1000, 0, 0, 0]);
    const y = fwd()(engine.fromArray(x, [3, 4]));
    expectClose(await y.toArray(), softmaxRef(x, 4), TOL, 'large');
  });

  it('GPU backward agrees with float32 finite differences of the GPU forward', async () => {
    const shape = [3, 7];
    const r = rng(99);
    const x = randArray(r, 21, 2);
    const dy = randArray(r, 21);
    const dx = await bwd()(fwd()(engine.fromArray(x, shape)), engine.fromArray(dy, shape)).toArray();
    const h = 1e-2;
    for (const i of [0, 5, 10, 20]) {
      const xp = Float32Array.from(x);
      const xm = Float32Array.from(x);
      xp[i] += h;
      xm[i] -= h;
      const fp = dot(await fwd()(engine.fromArray(xp, shape)).toArray(), dy);
      const fm = dot(await fwd()(engine.fromArray(xm, shape)).toArray(), dy);
      expect(Math.abs((fp - fm) / (2 * h) - dx[i]), `dx[${i}]`).toBeLessThanOrEqual(FD_TOL);
    }
  });

  for (const c of refCases('softmax')) {
    it(`torch reference ${c.id}`, async () => {
      const shape = c.inputs.x.shape;
      const x = engine.fromArray(refData(c.inputs.x), shape);
      const y = fwd()(x);
      expectRef(await y.toArray(), c.outputs.y, refTol(c, 'y'), `${c.id} y`);
      const dx = bwd()(y, engine.fromArray(refData(c.upstream!.dy), shape));
      expectRef(await dx.toArray(), c.grads.dx, refTol(c, 'dx'), `${c.id} dx`);
    });
  }

  it('rejects a 0-d tensor and mismatched dy', () => {
    expect(() => fwd()(engine.fromArray([1], []))).toThrow(ShapeError);
    const y = engine.fromArray(new Float32Array(6), [2, 3]);
    expect(() => bwd()(y, engine.fromArray(new Float32Array(6), [3, 2]))).toThrow(ShapeError);
  });
});

describe('softmax reference', () => {
  it('backward reference agrees with float64 finite differences', () => {
    const r = rng(3);
    const k = 6;
    const x = Array.from(randArray(r, 18, 3));
    const dy = Array.from(randArray(r, 18));
    const num = numericalGrad((xs) => dot(softmaxRef(xs, k), dy), x);
    expectClose(softmaxBackwardRef(x, dy, k), num, 1e-7, 'softmax dx');
  });
});
