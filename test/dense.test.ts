import { describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import { biasGrad } from '../src/kernels/bias-grad.js';
import { linearBackwardInput, linearBackwardWeight, linearForward } from '../src/kernels/dense.js';
import { kernels } from '../src/kernels/registry.js';
import type { ActivationName } from '../src/kernels/reference/activation.js';
import {
  biasGradRef,
  linearBackwardInputRef,
  linearBackwardWeightRef,
  linearForwardRef,
} from '../src/kernels/reference/dense.js';
import { dot, expectClose, numericalGrad, randArray, rng } from './helpers.js';
import { expectRef, refCases, refData, refTol } from './torch-ref.js';
import { variantRuns, gemmTestEngines, type DeviceKind } from './gemm-helpers.js';

// Tolerances:
// - GPU vs float64 reference: relative error (max |diff| / max |expected|) <= 1e-4 (float32 sums of
//   up to 5000 products of values in [-1, 1)).
// - CPU reference backward vs float64 central differences (h = 1e-6): 1e-6 (the layer is linear in x
//   and w, so only rounding remains).
// - GPU backward vs float32 central differences of the GPU forward (h = 1e-2) on a few coordinates: 1e-2.
// - PyTorch cases: the README's max(1e-5, 20 * fp32_torch_err).
const TOL = 1e-4;

let engine: Engine;
let sgEngine: Engine;
const engineFor = gemmTestEngines((plain, subgroups) => ([engine, sgEngine] = [plain, subgroups]));

// [N, in, out, activation]: sizes that are not multiples of any tile, a single output (computed
// transposed), a long reduction with few outputs (split-K) and the MNIST-sized layer.
const cases: [number, number, number, ActivationName?][] = [
  [1, 1, 1],
  [3, 7, 5, 'relu'],
  [7, 33, 65, 'leakyRelu'],
  [65, 17, 1, 'sigmoid'],
  [33, 65, 7, 'tanh'],
  [2, 5000, 3, 'relu'],
  [32, 784, 128, 'relu'],
];

describe.each(variantRuns('linear.forward'))('linear kernels (%s, %s device)', (variant, dev) => {
  for (const [n, inF, outF, act] of cases) {
    it(`x [${n}, ${inF}] -> ${outF}${act ? ` ${act}` : ''}`, async () => {
      const r = rng(n * 1000 + inF * 10 + outF);
      const x = randArray(r, n * inF);
      const w = randArray(r, outF * inF);
      const b = randArray(r, outF);
      const dy = randArray(r, n * outF);
      const xt = engineFor(dev).fromArray(x, [n, inF]);
      const wt = engineFor(dev).fromArray(w, [outF, inF]);
      const bt = engineFor(dev).fromArray(b, [outF]);
      const dyt = engineFor(dev).fromArray(dy, [n, outF]);
      const y = kernels.get('linear.forward', engineFor(dev), variant)(xt, wt, bt, { activation: act, slope: 0.2 });
      expect(y.shape).toEqual([n, outF]);
      expectClose(await y.toArray(), linearForwardRef(x, w, b, n, inF, outF, act ?? 'none', 0.2), TOL, 'y');
      const y0 = kernels.get('linear.forward', engineFor(dev), variant)(xt, wt, null);
      expectClose(await y0.toArray(), linearForwardRef(x, w, null, n, inF, outF), TOL, 'y (no bias)');
      // A forward-only variant (registered for linear.forward alone) is checked with the default backward kernels.
      const back = (op: string) => (kernels.variants(op).includes(variant) ? variant : undefined);
      const dx = kernels.get('linear.backwardInput', engineFor(dev), back('linear.backwardInput'))(dyt, wt);
      expect(dx.shape).toEqual([n, inF]);
      expectClose(await dx.toArray(), linearBackwardInputRef(dy, w, n, inF, outF), TOL, 'dx');
      const dw = kernels.get('linear.backwardWeight', engineFor(dev), back('linear.backwardWeight'))(xt, dyt);
      expect(dw.shape).toEqual([outF, inF]);
      expectClose(await dw.toArray(), linearBackwardWeightRef(x, dy, n, inF, outF), TOL, 'dw');
      const db = biasGrad(dyt);
      expectClose(await db.toArray(), biasGradRef(dy, [n, outF]), TOL, 'db');
      for (const t of [xt, wt, bt, dyt, y, y0, dx, dw, db]) t.dispose();
    });
  }
});

describe('linear reference gradients (float64 finite differences)', () => {
  it('dx, dw, db', () => {
    const r = rng(3);
    const [n, inF, outF] = [3, 5, 4];
    const x = randArray(r, n * inF);
    const w = randArray(r, outF * inF);
    const b = randArray(r, outF);
    const dy = randArray(r, n * outF);
    const f = (xs: ArrayLike<number>, ws: ArrayLike<number>, bs: ArrayLike<number>) => dot(linearForwardRef(xs, ws, bs, n, inF, outF), dy);
    expectClose(linearBackwardInputRef(dy, w, n, inF, outF), numericalGrad((v) => f(v, w, b), x), 1e-6, 'dx');
    expectClose(linearBackwardWeightRef(x, dy, n, inF, outF), numericalGrad((v) => f(x, v, b), w), 1e-6, 'dw');
    expectClose(biasGradRef(dy, [n, outF]), numericalGrad((v) => f(x, w, v), b), 1e-6, 'db');
  });
});

describe('linear GPU gradients (float32 finite differences)', () => {
  const H = 1e-2;
  for (const variant of kernels.variants('linear.backwardInput')) {
    it(`dx, dw, db (${variant})`, async () => {
      const r = rng(21);
      const [n, inF, outF] = [5, 33, 7];
      const x = randArray(r, n * inF);
      const w = randArray(r, outF * inF);
      const b = randArray(r, outF);
      const dy = randArray(r, n * outF);
      const loss = async () => {
        const ts = [engine.fromArray(x, [n, inF]), engine.fromArray(w, [outF, inF]), engine.fromArray(b, [outF])];
        const y = kernels.get('linear.forward', engine, variant)(ts[0], ts[1], ts[2]);
        const v = dot(await y.toArray(), dy);
        for (const t of [...ts, y]) t.dispose();
        return v;
      };
      const dyt = engine.fromArray(dy, [n, outF]);
      const dx = await kernels.get('linear.backwardInput', engine, variant)(dyt, engine.fromArray(w, [outF, inF])).toArray();
      const dw = await kernels.get('linear.backwardWeight', engine, variant)(engine.fromArray(x, [n, inF]), dyt).toArray();
      const db = await biasGrad(dyt).toArray();
      for (const [arr, grad, what] of [[x, dx, 'dx'], [w, dw, 'dw'], [b, db, 'db']] as const) {
        const idx = [0, 3, arr.length - 1];
        const got: number[] = [];
        const num: number[] = [];
        for (const i of idx) {
          const v = arr[i];
          arr[i] = v + H;
          const fp = await loss();
          arr[i] = v - H;
          const fm = await loss();
          arr[i] = v;
          got.push(grad[i]);
          num.push((fp - fm) / (2 * H));
        }
        expectClose(got, num, 1e-2, what);
      }
    });
  }
});

describe('linear PyTorch reference cases', () => {
  for (const rc of refCases('linear')) {
    it(rc.id, async () => {
      for (const dev of ['default', 'subgroups'] as DeviceKind[]) {
        const e = engineFor(dev);
        const x = e.fromArray(refData(rc.inputs.x), rc.inputs.x.shape);
        const w = e.fromArray(refData(rc.inputs.w), rc.inputs.w.shape);
        const b = e.fromArray(refData(rc.inputs.b), rc.inputs.b.shape);
        const dy = e.fromArray(refData(rc.upstream!.dy), rc.upstream!.dy.shape);
        // Each op's own variants (a variant may be registered for one pass only).
        const runs = (op: string) => variantRuns(op).filter(([, d]) => d === dev).map(([v]) => v);
        for (const v of runs('linear.forward')) {
          const y = kernels.get('linear.forward', e, v)(x, w, b);
          expectRef(await y.toArray(), rc.outputs.y, refTol(rc, 'y'), `y (${v}, ${dev})`);
        }
        for (const v of runs('linear.backwardInput')) {
          const dx = kernels.get('linear.backwardInput', e, v)(dy, w);
          expectRef(await dx.toArray(), rc.grads.dx, refTol(rc, 'dx'), `dx (${v}, ${dev})`);
        }
        for (const v of runs('linear.backwardWeight')) {
          const dw = kernels.get('linear.backwardWeight', e, v)(x, dy);
          expectRef(await dw.toArray(), rc.grads.dw, refTol(rc, 'dw'), `dw (${v}, ${dev})`);
        }
        if (dev === 'default') {
          expectRef(await biasGrad(dy).toArray(), rc.grads.db, refTol(rc, 'db'), 'db');
          // The public entry points (registry's automatic choice).
          expectRef(await linearForward(x, w, b).toArray(), rc.outputs.y, refTol(rc, 'y'), 'y (auto)');
          expectRef(await linearBackwardInput(dy, w).toArray(), rc.grads.dx, refTol(rc, 'dx'), 'dx (auto)');
          expectRef(await linearBackwardWeight(x, dy).toArray(), rc.grads.dw, refTol(rc, 'dw'), 'dw (auto)');
        }
      }
    });
  }
});

describe('linear shape errors', () => {
  it('names the op and the shapes', () => {
    const x = engine.zeros([4, 3]);
    expect(() => linearForward(x, engine.zeros([5, 2]), null)).toThrow(ShapeError);
    expect(() => linearForward(x, engine.zeros([5, 2]), null)).toThrow(/linear\.forward.*\[4, 3\].*\[5, 2\]/);
    expect(() => linearForward(x, engine.zeros([5, 3]), engine.zeros([4]))).toThrow(/b must be \[5\]/);
    expect(() => linearForward(engine.zeros([4, 3, 1]), engine.zeros([5, 3]), null)).toThrow(/linear\.forward/);
    expect(() => linearBackwardInput(engine.zeros([4, 6]), engine.zeros([5, 3]))).toThrow(/linear\.backwardInput/);
    expect(() => linearBackwardWeight(x, engine.zeros([2, 5]))).toThrow(/linear\.backwardWeight.*batch/);
    expect(() => biasGrad(engine.zeros([5]))).toThrow(/bias\.backward/);
  });
});
