import { describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import { biasGrad } from '../src/kernels/bias-grad.js';
import type { Conv2dParams } from '../src/kernels/conv2d.js';
import {
  convTranspose2dBackwardInput,
  convTranspose2dBackwardWeight,
  convTranspose2dForward,
} from '../src/kernels/conv-transpose2d.js';
import { kernels } from '../src/kernels/registry.js';
import type { ActivationName } from '../src/kernels/reference/activation.js';
import {
  convTranspose2dBackwardInputRef,
  convTranspose2dBackwardWeightRef,
  convTranspose2dRef,
  convTransposeOutSize,
} from '../src/kernels/reference/conv-transpose2d.js';
import { biasGradRef } from '../src/kernels/reference/dense.js';
import { dot, expectClose, numericalGrad, randArray, rng } from './helpers.js';
import { expectRef, refCases, refData, refTol } from './torch-ref.js';
import { variantRuns, gemmTestEngines, type DeviceKind } from './gemm-helpers.js';

// Tolerances:
// - GPU vs the float64 reference: relative error (max |diff| / max |expected|) <= 1e-4.
// - CPU reference backward vs float64 central differences (h = 1e-6): 1e-6 (linear in x and w).
// - GPU backward vs float32 central differences of the GPU forward (h = 1e-2), a few coordinates: 1e-2.
// - PyTorch cases: the README's max(1e-5, 20 * fp32_torch_err).
const TOL = 1e-4;

let engine: Engine;
let sgEngine: Engine;
const engineFor = gemmTestEngines((plain, subgroups) => ([engine, sgEngine] = [plain, subgroups]));

interface Case {
  n: number;
  ci: number;
  co: number;
  h: number;
  w: number;
  k: [number, number];
  stride: [number, number];
  padding: [number, number];
  act?: ActivationName;
}

const tc = (n: number, ci: number, co: number, h: number, w: number, k: number, s: number, p: number, act?: ActivationName): Case => ({
  n, ci, co, h, w, k: [k, k], stride: [s, s], padding: [p, p], act,
});

// Batch 1/3, channels 1/3/5, kernels 1/3/4/5, stride 1/2/3, padding 0/1, odd sizes; DCGAN's k4 s2 p1;
// a stride larger than the kernel (output pixels no tap reaches get only the bias); channel counts
// beyond one register block; an asymmetric kernel, stride and padding.
const cases: Case[] = [
  tc(1, 1, 3, 7, 9, 3, 1, 1, 'relu'),
  tc(3, 3, 5, 4, 5, 4, 2, 1, 'leakyRelu'),
  tc(1, 5, 1, 13, 11, 1, 1, 0),
  tc(3, 3, 3, 7, 9, 5, 2, 1, 'tanh'),
  tc(1, 5, 3, 3, 5, 3, 2, 0, 'sigmoid'),
  tc(3, 1, 5, 7, 9, 4, 1, 0),
  tc(2, 4, 3, 1, 1, 4, 1, 0),
  tc(3, 19, 6, 1, 1, 4, 2, 0, 'relu'), // a 1x1 input without bias and padding is one plain GEMM (see y0 below)
  tc(1, 2, 3, 4, 4, 1, 2, 0, 'relu'),
  tc(1, 2, 2, 3, 3, 4, 3, 1),
  tc(2, 17, 10, 6, 5, 4, 2, 1, 'relu'),
  { n: 1, ci: 2, co: 3, h: 5, w: 4, k: [3, 4], stride: [2, 1], padding: [1, 0] },
  // Few output channels from many input channels: the forward in column form (GEMM into columns, then
  // col2im with the bias and activation fused; columnForm in src/kernels/conv2d.ts): a DCGAN generator's
  // image layer, 2 channels at stride 1, an asymmetric kernel, stride and padding.
  tc(2, 9, 1, 5, 6, 4, 2, 1, 'tanh'),
  tc(1, 17, 2, 4, 3, 3, 1, 1, 'leakyRelu'),
  { n: 2, ci: 8, co: 1, h: 3, w: 5, k: [3, 4], stride: [2, 1], padding: [1, 2] },
];

const name = (c: Case) =>
  `n${c.n} ${c.ci}->${c.co} ${c.h}x${c.w} k${c.k.join('x')} s${c.stride.join(',')} p${c.padding.join(',')}${c.act ? ` ${c.act}` : ''}`;

function makeData(c: Case, seed: number) {
  const r = rng(seed);
  const xShape = [c.n, c.ci, c.h, c.w];
  const wShape = [c.ci, c.co, ...c.k];
  const [ho, wo] = convTransposeOutSize(c.h, c.w, c.k[0], c.k[1], c);
  const yShape = [c.n, c.co, ho, wo];
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return {
    xShape, wShape, yShape,
    x: randArray(r, size(xShape)),
    w: randArray(r, size(wShape)),
    b: randArray(r, c.co),
    dy: randArray(r, size(yShape)),
  };
}

describe.each(variantRuns('convTranspose2d.forward'))('convTranspose2d.forward (%s, %s device)', (variant, dev) => {
  cases.forEach((c, i) => {
    it(name(c), async () => {
      const d = makeData(c, 500 + i);
      const x = engineFor(dev).fromArray(d.x, d.xShape);
      const w = engineFor(dev).fromArray(d.w, d.wShape);
      const b = engineFor(dev).fromArray(d.b, [c.co]);
      const f = kernels.get('convTranspose2d.forward', engineFor(dev), variant);
      const y = f(x, w, b, { stride: c.stride, padding: c.padding, activation: c.act, slope: 0.2 });
      expect(y.shape).toEqual(d.yShape);
      expectClose(await y.toArray(), convTranspose2dRef(d.x, d.xShape, d.w, d.wShape, d.b, c, c.act ?? 'none', 0.2), TOL, 'y');
      const y0 = f(x, w, null, c);
      expectClose(await y0.toArray(), convTranspose2dRef(d.x, d.xShape, d.w, d.wShape, null, c), TOL, 'y (no bias)');
      const y1 = f(x, w, null, { stride: c.stride, padding: c.padding, activation: c.act, slope: 0.2 });
      expectClose(await y1.toArray(), convTranspose2dRef(d.x, d.xShape, d.w, d.wShape, null, c, c.act ?? 'none', 0.2), TOL, 'y (activation, no bias)');
      for (const t of [x, w, b, y, y0, y1]) t.dispose();
    });
  });
});

describe.each(variantRuns('convTranspose2d.backwardInput'))('convTranspose2d.backwardInput (%s, %s device)', (variant, dev) => {
  cases.forEach((c, i) => {
    it(name(c), async () => {
      const d = makeData(c, 600 + i);
      const dy = engineFor(dev).fromArray(d.dy, d.yShape);
      const w = engineFor(dev).fromArray(d.w, d.wShape);
      const dx = kernels.get('convTranspose2d.backwardInput', engineFor(dev), variant)(dy, w, d.xShape, c);
      expect(dx.shape).toEqual(d.xShape);
      expectClose(await dx.toArray(), convTranspose2dBackwardInputRef(d.dy, d.w, d.xShape, d.wShape, c), TOL, 'dx');
      for (const t of [dy, w, dx]) t.dispose();
    });
  });
});

describe.each(variantRuns('convTranspose2d.backwardWeight'))('convTranspose2d.backwardWeight (%s, %s device)', (variant, dev) => {
  cases.forEach((c, i) => {
    it(name(c), async () => {
      const d = makeData(c, 700 + i);
      const x = engineFor(dev).fromArray(d.x, d.xShape);
      const dy = engineFor(dev).fromArray(d.dy, d.yShape);
      const dw = kernels.get('convTranspose2d.backwardWeight', engineFor(dev), variant)(x, dy, d.wShape, c);
      expect(dw.shape).toEqual(d.wShape);
      expectClose(await dw.toArray(), convTranspose2dBackwardWeightRef(d.x, d.dy, d.xShape, d.wShape, c), TOL, 'dw');
      const db = biasGrad(dy);
      expectClose(await db.toArray(), biasGradRef(d.dy, d.yShape), TOL, 'db');
      for (const t of [x, dy, dw, db]) t.dispose();
    });
  });
});

describe('convTranspose2d reference gradients (float64 finite differences)', () => {
  for (const c of [tc(2, 2, 3, 3, 4, 4, 2, 1), tc(1, 2, 2, 4, 3, 3, 1, 1), { n: 1, ci: 2, co: 2, h: 3, w: 4, k: [3, 2], stride: [2, 3], padding: [1, 0] } as Case]) {
    it(name(c), () => {
      const d = makeData(c, 9);
      const f = (x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>) => dot(convTranspose2dRef(x, d.xShape, w, d.wShape, b, c), d.dy);
      expectClose(convTranspose2dBackwardInputRef(d.dy, d.w, d.xShape, d.wShape, c), numericalGrad((v) => f(v, d.w, d.b), d.x), 1e-6, 'dx');
      expectClose(convTranspose2dBackwardWeightRef(d.x, d.dy, d.xShape, d.wShape, c), numericalGrad((v) => f(d.x, v, d.b), d.w), 1e-6, 'dw');
      expectClose(biasGradRef(d.dy, d.yShape), numericalGrad((v) => f(d.x, d.w, v), d.b), 1e-6, 'db');
    });
  }
});

describe('convTranspose2d GPU gradients (float32 finite differences)', () => {
  const c = tc(2, 3, 4, 4, 3, 4, 2, 1);
  const H = 1e-2;
  for (const variant of kernels.variants('convTranspose2d.backwardWeight')) {
    it(`dx, dw, db (${variant})`, async () => {
      const d = makeData(c, 13);
      const x = Float32Array.from(d.x);
      const w = Float32Array.from(d.w);
      const b = Float32Array.from(d.b);
      const loss = async () => {
        const ts = [engine.fromArray(x, d.xShape), engine.fromArray(w, d.wShape), engine.fromArray(b, [c.co])];
        const y = kernels.get('convTranspose2d.forward', engine, variant)(ts[0], ts[1], ts[2], c);
        const v = dot(await y.toArray(), d.dy);
        for (const t of [...ts, y]) t.dispose();
        return v;
      };
      const dyt = engine.fromArray(d.dy, d.yShape);
      const bx = kernels.variants('convTranspose2d.backwardInput').includes(variant) ? variant : undefined;
      const dx = await kernels.get('convTranspose2d.backwardInput', engine, bx)(dyt, engine.fromArray(w, d.wShape), d.xShape, c).toArray();
      const dw = await kernels.get('convTranspose2d.backwardWeight', engine, variant)(engine.fromArray(x, d.xShape), dyt, d.wShape, c).toArray();
      const db = await biasGrad(dyt).toArray();
      const r = rng(17);
      for (const [arr, grad, what] of [[x, dx, 'dx'], [w, dw, 'dw'], [b, db, 'db']] as const) {
        const idx = Array.from({ length: 4 }, () => r.int(arr.length));
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
        expectClose(got, num, 1e-2, `${what} at ${idx}`);
      }
    });
  }
});

describe('convTranspose2d PyTorch reference cases', () => {
  for (const rc of refCases('conv_transpose2d')) {
    it(rc.id, async () => {
      const p: Conv2dParams = { stride: rc.params.stride, padding: rc.params.padding };
      expect(rc.params.output_padding).toEqual([0, 0]);
      for (const dev of ['default', 'subgroups'] as DeviceKind[]) {
        const e = engineFor(dev);
        const pick = (op: string) => variantRuns(op).filter(([, d]) => d === dev).map(([v]) => v);
        const x = e.fromArray(refData(rc.inputs.x), rc.inputs.x.shape);
        const w = e.fromArray(refData(rc.inputs.w), rc.inputs.w.shape);
        const b = e.fromArray(refData(rc.inputs.b), rc.inputs.b.shape);
        const dy = e.fromArray(refData(rc.upstream!.dy), rc.upstream!.dy.shape);
        for (const v of pick('convTranspose2d.forward')) {
          const y = kernels.get('convTranspose2d.forward', e, v)(x, w, b, p);
          expect(y.shape.slice(2)).toEqual(rc.params.out_hw);
          expectRef(await y.toArray(), rc.outputs.y, refTol(rc, 'y'), `y (${v}, ${dev})`);
        }
        for (const v of pick('convTranspose2d.backwardInput')) {
          const dx = kernels.get('convTranspose2d.backwardInput', e, v)(dy, w, rc.inputs.x.shape, p);
          expectRef(await dx.toArray(), rc.grads.dx, refTol(rc, 'dx'), `dx (${v}, ${dev})`);
        }
        for (const v of pick('convTranspose2d.backwardWeight')) {
          const dw = kernels.get('convTranspose2d.backwardWeight', e, v)(x, dy, rc.inputs.w.shape, p);
          expectRef(await dw.toArray(), rc.grads.dw, refTol(rc, 'dw'), `dw (${v}, ${dev})`);
        }
        if (dev === 'default') {
          expectRef(await biasGrad(dy).toArray(), rc.grads.db, refTol(rc, 'db'), 'db');
          expectRef(await convTranspose2dForward(x, w, b, p).toArray(), rc.outputs.y, refTol(rc, 'y'), 'y (auto)');
          expectRef(await convTranspose2dBackwardInput(dy, w, rc.inputs.x.shape, p).toArray(), rc.grads.dx, refTol(rc, 'dx'), 'dx (auto)');
          expectRef(await convTranspose2dBackwardWeight(x, dy, rc.inputs.w.shape, p).toArray(), rc.grads.dw, refTol(rc, 'dw'), 'dw (auto)');
        }
      }
    });
  }
});

describe('convTranspose2d shape errors', () => {
  it('names the op and the shapes', () => {
    const p: Conv2dParams = { stride: [2, 2], padding: [1, 1] };
    const x = engine.zeros([1, 3, 4, 4]);
    expect(() => convTranspose2dForward(x, engine.zeros([2, 3, 4, 4]), null, p)).toThrow(ShapeError);
    expect(() => convTranspose2dForward(x, engine.zeros([2, 3, 4, 4]), null, p)).toThrow(/convTranspose2d\.forward.*\[1, 3, 4, 4\].*\[2, 3, 4, 4\]/);
    expect(() => convTranspose2dForward(x, engine.zeros([3, 2, 4, 4]), engine.zeros([3]), p)).toThrow(/bias/);
    expect(() => convTranspose2dForward(engine.zeros([1, 3, 1, 1]), engine.zeros([3, 2, 1, 1]), null, { stride: [1, 1], padding: [1, 1] })).toThrow(/output would be/);
    expect(() => convTranspose2dBackwardInput(engine.zeros([1, 2, 7, 8]), engine.zeros([3, 2, 4, 4]), [1, 3, 4, 4], p)).toThrow(/convTranspose2d\.backwardInput.*dy/);
    expect(() => convTranspose2dBackwardWeight(x, engine.zeros([1, 2, 8, 8]), [3, 4, 4, 4], p)).toThrow(/convTranspose2d\.backwardWeight/);
  });
});
