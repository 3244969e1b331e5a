import { afterAll, beforeAll, describe, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import '../src/kernels/activation.js';
import { kernels } from '../src/kernels/registry.js';
import { activationBackwardRef, activationRef, type ActivationName } from '../src/kernels/reference/activation.js';
import { dot, expectClose, numericalGrad, randArray, rng, testEngine } from './helpers.js';

// Tolerances: elementwise float32 math against float64: 1e-5 relative (exp/div rounding, a few ulp).
// Backward of sigmoid/tanh is computed from the output as PyTorch does (y(1-y), 1-y^2); where y is
// within float32 rounding of 1 that loses relative precision, so dx also gets an absolute allowance
// of 1e-7 * max|dy| (one ulp of 1.0 is 1.2e-7).
const TOL = 1e-5;
const DX_ATOL = 1e-7;
const acts: ActivationName[] = ['relu', 'leakyRelu', 'sigmoid', 'tanh'];
const shapes = [[1], [3, 5], [3, 5, 7, 9], [2, 1, 13, 11]];

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

describe.each(kernels.variants('activation.forward'))('activation kernels (%s)', (variant) => {
  for (const act of acts) {
    for (const shape of shapes) {
      it(`${act} ${JSON.stringify(shape)} forward and backward match the reference`, async () => {
        const r = rng(shape.length * 31 + act.length);
        const n = shape.reduce((a, b) => a * b, 1);
        const x = randArray(r, n, 6);
        const dy = randArray(r, n);
        const xt = engine.fromArray(x, shape);
        const dyt = engine.fromArray(dy, shape);
        const y = kernels.get('activation.forward', engine, variant)(xt, act, 0.2);
        const dx = kernels.get('activation.backward', engine, variant)(y, dyt, act, 0.2);
        expectClose(await y.toArray(), activationRef(x, act, 0.2), TOL, `${act} y`);
        expectClose(await dx.toArray(), activationBackwardRef(x, dy, act, 0.2), TOL, `${act} dx`, DX_ATOL);
        for (const t of [xt, dyt, y, dx]) t.dispose();
      });
    }
  }

  it('sigmoid and tanh saturate without NaN at +-80', async () => {
    const x = new Float32Array([-80, -30, -10, 0.5, 10, 30, 80]);
    for (const act of ['sigmoid', 'tanh'] as const) {
      const y = kernels.get('activation.forward', engine, variant)(engine.fromArray(x, [7]), act);
      expectClose(await y.toArray(), activationRef(x, act), TOL, act);
    }
  });
});

describe('activation reference', () => {
  it('backward reference agrees with finite differences (float64)', () => {
    const r = rng(7);
    const x = Array.from(randArray(r, 20, 4));
    const dy = Array.from(randArray(r, 20));
    for (const act of acts) {
      const num = numericalGrad((xs) => dot(activationRef(xs, act, 0.2), dy), x);
      expectClose(activationBackwardRef(x, dy, act, 0.2), num, 1e-7, act);
    }
  });
});
