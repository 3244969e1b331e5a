// The spectral-norm kernels (src/kernels/spectral-norm.ts, shaders/spectral_norm.wgsl), every registered
// variant, against the float64 reference (src/kernels/reference/spectral-norm.ts), whose gradient is in
// turn checked against central differences of its own forward. Shapes leave the 256-invocation workgroup
// partly idle and partly looping (rows or cols 1, under 256, over 256 and not a multiple of it); outputs
// start as NaN (poisoned allocations), so every element must be written. The module-level behaviour
// (nn.spectralNorm against torch's semantics, state dicts, the GAN) is tested in spectral-norm.test.ts.
//
// Tolerance: relative error (max |diff| / max |expected|) <= 1e-5: float32 sums of at most ~1,000 products
// and two square roots per step (observed a few 1e-7).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { InvalidArgumentError, ShapeError } from '../src/gpu/errors.js';
import { spectralNormBackwardOp, spectralNormForwardOp } from '../src/kernels/spectral-norm.js';
import { spectralNormBackwardRef, spectralNormRef } from '../src/kernels/reference/spectral-norm.js';
import { dot, expectClose, numericalGrad, randArray, rng, testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const TOL = 1e-5;
const EPS = 1e-12;

// [rows, cols] of the matrix view, the weight's own shape, power steps.
const cases: { shape: number[]; rows: number; cols: number; steps: number }[] = [
  { shape: [1, 5], rows: 1, cols: 5, steps: 1 },
  { shape: [7, 3, 2, 2], rows: 7, cols: 12, steps: 1 },
  { shape: [3, 300], rows: 3, cols: 300, steps: 2 },
  { shape: [300, 3], rows: 300, cols: 3, steps: 1 },
  { shape: [33, 17, 3, 3], rows: 33, cols: 153, steps: 3 },
  { shape: [9, 1030], rows: 9, cols: 1030, steps: 0 },
];

describe.each(spectralNormForwardOp.variants())('spectralNorm.forward / backward (%s)', (variant) => {
  it.each(cases)('weight $shape, $steps power steps', async ({ shape, rows, cols, steps }) => {
    const r = rng(rows * 1000 + cols);
    const w = randArray(r, rows * cols);
    const u0 = randArray(r, rows);
    const v0 = randArray(r, cols);
    const g = randArray(r, rows * cols);
    const wt = engine.fromArray(w, shape);
    const ut = engine.fromArray(u0, [rows]);
    const vt = engine.fromArray(v0, [cols]);
    const gt = engine.fromArray(g, shape);
    const out = spectralNormForwardOp.get(engine, variant)(wt, ut, vt, { steps, eps: EPS });
    const ref = spectralNormRef(w, rows, cols, u0, v0, steps, EPS);
    expect(out.normalized.shape).toEqual(shape);
    expectClose(await out.u.toArray(), ref.u, TOL, 'u');
    expectClose(await out.v.toArray(), ref.v, TOL, 'v');
    expectClose(await out.sigma.toArray(), [ref.sigma], TOL, 'sigma');
    expectClose(await out.normalized.toArray(), ref.normalized, TOL, 'W / sigma');
    // The backward with this forward's u, v, sigma (as F.spectralNormalize saves them).
    const dw = spectralNormBackwardOp.get(engine, variant)(wt, gt, out.u, out.v, out.sigma);
    expectClose(await dw.toArray(), spectralNormBackwardRef(w, g, ref.u, ref.v, ref.sigma), TOL, 'dW');
    for (const t of [wt, ut, vt, gt, out.normalized, out.u, out.v, out.sigma, dw]) t.dispose();
  });
});

describe('spectralNorm reference', () => {
  it('its gradient equals central differences of its forward with u, v held constant', () => {
    const r = rng(77);
    const rows = 4;
    const cols = 6;
    const w = Float64Array.from(randArray(r, rows * cols));
    const g = randArray(r, rows * cols);
    const { u, v, sigma } = spectralNormRef(w, rows, cols, randArray(r, rows), randArray(r, cols), 2, EPS);
    // With u, v fixed, the forward is W / (uᵀ W v): steps 0 from the stepped u, v.
    const f = (wd: Float64Array) => dot(g, spectralNormRef(wd, rows, cols, u, v, 0, EPS).normalized);
    expectClose(spectralNormBackwardRef(w, g, u, v, sigma), numericalGrad(f, w, 1e-6), 1e-6, 'dW');
  });

  it('many power steps converge to the top singular value of a matrix with a known spectrum', () => {
    // W = diag(3, 2, 1) padded with a zero column: singular values 3, 2, 1.
    const w = [3, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0];
    const { sigma } = spectralNormRef(w, 3, 4, [0.5, 0.5, 0.5], [1, 1, 1, 1], 100, EPS);
    expect(sigma).toBeCloseTo(3, 12);
  });
});

describe('spectralNorm argument checks', () => {
  it('names the mismatch: u or v of the wrong length, gradOut of another size, negative steps', () => {
    const w = engine.fromArray(randArray(rng(1), 12), [3, 4]);
    const u = engine.fromArray(randArray(rng(2), 3), [3]);
    const v = engine.fromArray(randArray(rng(3), 4), [4]);
    const bad = engine.fromArray(randArray(rng(4), 5), [5]);
    const fwd = spectralNormForwardOp.get(engine);
    expect(() => fwd(w, bad, v, { steps: 1, eps: EPS })).toThrow(ShapeError);
    expect(() => fwd(w, bad, v, { steps: 1, eps: EPS })).toThrow(/u must hold 3 values and v 4/);
    expect(() => fwd(w, u, bad, { steps: 1, eps: EPS })).toThrow(ShapeError);
    expect(() => fwd(w, u, v, { steps: -1, eps: EPS })).toThrow(InvalidArgumentError);
    expect(() => fwd(w, u, v, { steps: -1, eps: EPS })).toThrow(/steps must be an integer >= 0/);
    expect(() => fwd(w, u, v, { steps: 1, eps: 0 })).toThrow(/eps must be a finite number > 0/);
    const sigma = engine.fromArray([2], []);
    expect(() => spectralNormBackwardOp.get(engine)(w, bad, u, v, sigma)).toThrow(/gradOut \[5\] must have the weight's 12 elements/);
    for (const t of [w, u, v, bad, sigma]) t.dispose();
  });
});
