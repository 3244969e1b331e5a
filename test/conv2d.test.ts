import { describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import { biasGrad } from '../src/kernels/bias-grad.js';
import {
  conv2dBackwardInput,
  conv2dBackwardWeight,
  conv2dForward,
  conv2dOutputSize,
  type Conv2dParams,
} from '../src/kernels/conv2d.js';
import { kernels } from '../src/kernels/registry.js';
import type { ActivationName } from '../src/kernels/reference/activation.js';
import {
  conv2dBackwardInputRef,
  conv2dBackwardWeightRef,
  conv2dRef,
  convOutSize,
} from '../src/kernels/reference/conv2d.js';
import { biasGradRef } from '../src/kernels/reference/dense.js';
import { matmulRef } from '../src/kernels/reference/matmul.js';
import '../src/kernels/matmul.js';
import { dot, expectClose, numericalGrad, randArray, rng } from './helpers.js';
import { expectRef, refCases, refData, refTol } from './torch-ref.js';
import { variantRuns, gemmTestEngines, type DeviceKind } from './gemm-helpers.js';

// Tolerances:
// - GPU kernels vs the float64 reference: relative error (max |diff| / max |expected|) <= 1e-4; the
//   float32 sums here have at most a few thousand terms of magnitude <= 1.
// - CPU reference backward vs central differences of the reference forward (float64, h = 1e-6): 1e-6
//   (the forward is linear in x and w, so only rounding remains).
// - GPU backward vs central differences of the GPU forward (float32, h = 1e-2) on a few coordinates:
//   1e-2 relative to the largest gradient entry checked (f32 cancellation in f(x+h) - f(x-h)).
// - PyTorch reference cases: the README's max(1e-5, 20 * fp32_torch_err).
const TOL = 1e-4;

let engine: Engine;
let sgEngine: Engine;
const engineFor = gemmTestEngines((plain, subgroups) => ([engine, sgEngine] = [plain, subgroups]));

interface ConvCase {
  n: number;
  c: number;
  o: number;
  h: number;
  w: number;
  k: [number, number];
  stride: [number, number];
  padding: [number, number];
  act?: ActivationName;
}

const cc = (n: number, c: number, o: number, h: number, w: number, k: number, s: number, p: number, act?: ActivationName): ConvCase => ({
  n, c, o, h, w, k: [k, k], stride: [s, s], padding: [p, p], act,
});

// Covers batch 1/3, channels 1/3/5, spatial 7x9/13x11, kernels 1/3/5, stride 1/2, padding 0/1, plus
// DCGAN's k4 s2 p1, an asymmetric kernel/stride/padding, channel and pixel counts beyond one tile, and
// a long reduction with few weights (split-K weight gradient).
const cases: ConvCase[] = [
  cc(1, 1, 3, 7, 9, 3, 1, 1, 'relu'),
  cc(3, 3, 5, 13, 11, 3, 2, 1),
  cc(1, 5, 1, 13, 11, 5, 1, 0, 'leakyRelu'),
  cc(3, 3, 3, 7, 9, 1, 1, 0),
  cc(1, 3, 5, 13, 11, 5, 2, 1, 'sigmoid'),
  cc(3, 5, 3, 7, 9, 3, 2, 0),
  cc(1, 1, 5, 13, 11, 1, 2, 1),
  cc(3, 1, 1, 9, 7, 5, 1, 1, 'tanh'),
  cc(2, 3, 4, 8, 8, 4, 2, 1, 'leakyRelu'),
  { n: 1, c: 2, o: 3, h: 9, w: 8, k: [3, 2], stride: [2, 1], padding: [0, 1] },
  cc(2, 10, 17, 13, 11, 3, 1, 1, 'relu'),
  cc(4, 2, 3, 30, 30, 3, 1, 1),
  // For the 'gemm-subgroup-vec4' forms (see convForwardGemm / convBackwardWeightGemm): channel rows with
  // vec4 reads of w and of dy (4x4 outputs); pixel rows with vec4 reads of w (C*kH*kW = 36) and tap
  // rows with scalar reads of dy; no vec4 read possible (C*kH*kW = 27, stride 2, padding 1).
  cc(2, 8, 16, 6, 6, 3, 1, 0),
  cc(2, 4, 40, 9, 7, 3, 1, 1, 'leakyRelu'),
  cc(1, 3, 70, 11, 9, 3, 2, 1),
  // An input of 2 floats padded to 4x4 outputs: an operand smaller than one vec4 beside vec4 reads.
  cc(2, 1, 40, 1, 1, 2, 1, 2),
  // A 1x1 output whose kernel covers the input (a DCGAN discriminator's head): the input gradient is one
  // plain GEMM; beside it a 1x1 output whose kernel does not cover the input (stride 2), the phase GEMM.
  cc(3, 19, 6, 4, 4, 4, 1, 0),
  cc(2, 3, 5, 5, 5, 4, 2, 0),
  // Few input channels under many output channels: the input gradient in column form (one GEMM into
  // xc*kh*kw columns, then col2im; columnForm in src/kernels/conv2d.ts): a DCGAN discriminator's first
  // conv, 2 channels at stride 1, an asymmetric kernel, stride and padding.
  cc(2, 1, 8, 9, 7, 4, 2, 1, 'tanh'),
  cc(3, 2, 17, 7, 8, 3, 1, 1),
  { n: 1, c: 1, o: 9, h: 8, w: 9, k: [3, 4], stride: [2, 1], padding: [1, 2] },
];

const name = (c: ConvCase) =>
  `n${c.n} ${c.c}->${c.o} ${c.h}x${c.w} k${c.k.join('x')} s${c.stride.join(',')} p${c.padding.join(',')}${c.act ? ` ${c.act}` : ''}`;

function makeData(c: ConvCase, seed: number) {
  const r = rng(seed);
  const xShape = [c.n, c.c, c.h, c.w];
  const wShape = [c.o, c.c, ...c.k];
  const [ho, wo] = convOutSize(c.h, c.w, c.k[0], c.k[1], c);
  const yShape = [c.n, c.o, ho, wo];
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return {
    xShape, wShape, yShape,
    x: randArray(r, size(xShape)),
    w: randArray(r, size(wShape)),
    b: randArray(r, c.o),
    dy: randArray(r, size(yShape)),
  };
}

describe.each(variantRuns('conv2d.forward'))('conv2d.forward (%s, %s device)', (variant, dev) => {
  cases.forEach((c, i) => {
    it(name(c), async () => {
      const d = makeData(c, 100 + i);
      const x = engineFor(dev).fromArray(d.x, d.xShape);
      const w = engineFor(dev).fromArray(d.w, d.wShape);
      const b = engineFor(dev).fromArray(d.b, [c.o]);
      const y = kernels.get('conv2d.forward', engineFor(dev), variant)(x, w, b, { stride: c.stride, padding: c.padding, activation: c.act, slope: 0.2 });
      expect(y.shape).toEqual(d.yShape);
      expectClose(await y.toArray(), conv2dRef(d.x, d.xShape, d.w, d.wShape, d.b, c, c.act ?? 'none', 0.2), TOL, 'y');
      // Without bias.
      const y0 = kernels.get('conv2d.forward', engineFor(dev), variant)(x, w, null, { stride: c.stride, padding: c.padding });
      expectClose(await y0.toArray(), conv2dRef(d.x, d.xShape, d.w, d.wShape, null, c), TOL, 'y (no bias)');
      for (const t of [x, w, b, y, y0]) t.dispose();
    });
  });
});

describe.each(variantRuns('conv2d.backwardInput'))('conv2d.backwardInput (%s, %s device)', (variant, dev) => {
  cases.forEach((c, i) => {
    it(name(c), async () => {
      const d = makeData(c, 200 + i);
      const dy = engineFor(dev).fromArray(d.dy, d.yShape);
      const w = engineFor(dev).fromArray(d.w, d.wShape);
      const dx = kernels.get('conv2d.backwardInput', engineFor(dev), variant)(dy, w, d.xShape, c);
      expect(dx.shape).toEqual(d.xShape);
      expectClose(await dx.toArray(), conv2dBackwardInputRef(d.dy, d.w, d.xShape, d.wShape, c), TOL, 'dx');
      for (const t of [dy, w, dx]) t.dispose();
    });
  });
});

describe.each(variantRuns('conv2d.backwardWeight'))('conv2d.backwardWeight (%s, %s device)', (variant, dev) => {
  cases.forEach((c, i) => {
    it(name(c), async () => {
      const d = makeData(c, 300 + i);
      const x = engineFor(dev).fromArray(d.x, d.xShape);
      const dy = engineFor(dev).fromArray(d.dy, d.yShape);
      const dw = kernels.get('conv2d.backwardWeight', engineFor(dev), variant)(x, dy, d.wShape, c);
      expect(dw.shape).toEqual(d.wShape);
      expectClose(await dw.toArray(), conv2dBackwardWeightRef(d.x, d.dy, d.xShape, d.wShape, c), TOL, 'dw');
      for (const t of [x, dy, dw]) t.dispose();
    });
  });
});

describe('bias.backward', () => {
  for (const shape of [[1, 1], [3, 5], [32, 128], [1000, 3], [3, 5, 7, 9], [2, 1, 13, 11], [4, 3, 30, 30], [2, 70, 1, 1]]) {
    it(JSON.stringify(shape), async () => {
      const r = rng(shape.length * 97 + shape[1]);
      const dy = randArray(r, shape.reduce((a, b) => a * b, 1));
      for (const v of kernels.variants('bias.backward')) {
        const t = engine.fromArray(dy, shape);
        const db = kernels.get('bias.backward', engine, v)(t);
        expect(db.shape).toEqual([shape[1]]);
        expectClose(await db.toArray(), biasGradRef(dy, shape), TOL, `db (${v})`);
        t.dispose();
        db.dispose();
      }
    });
  }
});

describe('conv2d reference gradients (float64 finite differences)', () => {
  for (const c of [cc(2, 2, 3, 7, 9, 3, 2, 1), cc(1, 2, 2, 6, 6, 4, 2, 1), { n: 1, c: 2, o: 2, h: 7, w: 6, k: [3, 2], stride: [1, 2], padding: [1, 0] } as ConvCase]) {
    it(name(c), () => {
      const d = makeData(c, 7);
      const f = (x: ArrayLike<number>, w: ArrayLike<number>) => dot(conv2dRef(x, d.xShape, w, d.wShape, d.b, c), d.dy);
      const numX = numericalGrad((x) => f(x, d.w), d.x);
      const numW = numericalGrad((w) => f(d.x, w), d.w);
      expectClose(conv2dBackwardInputRef(d.dy, d.w, d.xShape, d.wShape, c), numX, 1e-6, 'dx');
      expectClose(conv2dBackwardWeightRef(d.x, d.dy, d.xShape, d.wShape, c), numW, 1e-6, 'dw');
      const numB = numericalGrad((b) => dot(conv2dRef(d.x, d.xShape, d.w, d.wShape, b, c), d.dy), d.b);
      expectClose(biasGradRef(d.dy, d.yShape), numB, 1e-6, 'db');
    });
  }
});

describe('conv2d GPU gradients (float32 finite differences)', () => {
  const c = cc(2, 3, 4, 9, 7, 3, 2, 1);
  const H = 1e-2;
  async function gpuLoss(x: Float32Array, w: Float32Array, b: Float32Array, d: ReturnType<typeof makeData>): Promise<number> {
    const xt = engine.fromArray(x, d.xShape);
    const wt = engine.fromArray(w, d.wShape);
    const bt = engine.fromArray(b, [c.o]);
    const y = conv2dForward(xt, wt, bt, c);
    const v = dot(await y.toArray(), d.dy);
    for (const t of [xt, wt, bt, y]) t.dispose();
    return v;
  }
  async function central(arr: Float32Array, i: number, loss: () => Promise<number>): Promise<number> {
    const v = arr[i];
    arr[i] = v + H;
    const fp = await loss();
    arr[i] = v - H;
    const fm = await loss();
    arr[i] = v;
    return (fp - fm) / (2 * H);
  }
  for (const variant of kernels.variants('conv2d.backwardInput')) {
    it(`dx, dw, db (${variant})`, async () => {
      const d = makeData(c, 11);
      const x = Float32Array.from(d.x);
      const w = Float32Array.from(d.w);
      const b = Float32Array.from(d.b);
      const dyt = engine.fromArray(d.dy, d.yShape);
      const xt = engine.fromArray(x, d.xShape);
      const wt = engine.fromArray(w, d.wShape);
      const dx = await kernels.get('conv2d.backwardInput', engine, variant)(dyt, wt, d.xShape, c).toArray();
      const dw = await kernels.get('conv2d.backwardWeight', engine, variant)(xt, dyt, d.wShape, c).toArray();
      const db = await biasGrad(dyt).toArray();
      const loss = () => gpuLoss(x, w, b, d);
      const r = rng(5);
      for (const [arr, grad, what] of [[x, dx, 'dx'], [w, dw, 'dw'], [b, db, 'db']] as const) {
        const idx = Array.from({ length: 4 }, () => r.int(arr.length));
        const got: number[] = [];
        const num: number[] = [];
        for (const i of idx) {
          got.push(grad[i]);
          num.push(await central(arr, i, loss));
        }
        expectClose(got, num, 1e-2, `${what} at ${idx}`);
      }
    });
  }
});

describe('conv2d PyTorch reference cases', () => {
  for (const rc of refCases('conv2d')) {
    it(rc.id, async () => {
      const p: Conv2dParams = { stride: rc.params.stride, padding: rc.params.padding };
      expect(conv2dOutputSize(rc.inputs.x.shape[2], rc.inputs.x.shape[3], rc.params.kernel, p)).toEqual(rc.params.out_hw);
      for (const dev of ['default', 'subgroups'] as DeviceKind[]) {
        const e = engineFor(dev);
        const pick = (op: string) => variantRuns(op).filter(([, d]) => d === dev).map(([v]) => v);
        const xt = e.fromArray(refData(rc.inputs.x), rc.inputs.x.shape);
        const wt = e.fromArray(refData(rc.inputs.w), rc.inputs.w.shape);
        const bt = e.fromArray(refData(rc.inputs.b), rc.inputs.b.shape);
        const dyt = e.fromArray(refData(rc.upstream!.dy), rc.upstream!.dy.shape);
        for (const v of pick('conv2d.forward')) {
          const y = kernels.get('conv2d.forward', e, v)(xt, wt, bt, p);
          expectRef(await y.toArray(), rc.outputs.y, refTol(rc, 'y'), `y (${v}, ${dev})`);
        }
        for (const v of pick('conv2d.backwardInput')) {
          const dx = kernels.get('conv2d.backwardInput', e, v)(dyt, wt, rc.inputs.x.shape, p);
          expectRef(await dx.toArray(), rc.grads.dx, refTol(rc, 'dx'), `dx (${v}, ${dev})`);
        }
        for (const v of pick('conv2d.backwardWeight')) {
          const dw = kernels.get('conv2d.backwardWeight', e, v)(xt, dyt, rc.inputs.w.shape, p);
          expectRef(await dw.toArray(), rc.grads.dw, refTol(rc, 'dw'), `dw (${v}, ${dev})`);
        }
        if (dev === 'default') {
          expectRef(await biasGrad(dyt).toArray(), rc.grads.db, refTol(rc, 'db'), 'db');
          // The public entry points (registry's automatic choice) give the same.
          expectRef(await conv2dForward(xt, wt, bt, p).toArray(), rc.outputs.y, refTol(rc, 'y'), 'y (auto)');
          expectRef(await conv2dBackwardInput(dyt, wt, rc.inputs.x.shape, p).toArray(), rc.grads.dx, refTol(rc, 'dx'), 'dx (auto)');
          expectRef(await conv2dBackwardWeight(xt, dyt, rc.inputs.w.shape, p).toArray(), rc.grads.dw, refTol(rc, 'dw'), 'dw (auto)');
        }
      }
    });
  }
});

describe('conv2d shape errors', () => {
  it('names the op and the shapes', () => {
    const x = engine.zeros([1, 3, 7, 7]);
    const p: Conv2dParams = { stride: [1, 1], padding: [0, 0] };
    expect(() => conv2dForward(x, engine.zeros([4, 2, 3, 3]), null, p)).toThrow(ShapeError);
    expect(() => conv2dForward(x, engine.zeros([4, 2, 3, 3]), null, p)).toThrow(/conv2d\.forward.*\[1, 3, 7, 7\].*\[4, 2, 3, 3\]/);
    expect(() => conv2dForward(x, engine.zeros([4, 3, 9, 9]), null, p)).toThrow(/does not fit/);
    expect(() => conv2dForward(x, engine.zeros([4, 3, 3, 3]), engine.zeros([5]), p)).toThrow(/bias/);
    expect(() => conv2dBackwardInput(engine.zeros([1, 4, 6, 6]), engine.zeros([4, 3, 3, 3]), [1, 3, 7, 7], p)).toThrow(/conv2d\.backwardInput.*dy/);
    expect(() => conv2dBackwardWeight(x, engine.zeros([1, 4, 5, 6]), [4, 3, 3, 3], p)).toThrow(/conv2d\.backwardWeight/);
    expect(() => conv2dForward(x, engine.zeros([4, 3, 3, 3]), null, { stride: [0, 1], padding: [0, 0] })).toThrow(/stride/);
  });
});

describe('grids over the device limit', () => {
  // Every kernel of this family loops over its grid with the grid's stride, so a grid clamped to the
  // device's maxComputeWorkgroupsPerDimension still covers the whole output. Lowering the limit this
  // engine reports to 2 makes every dispatch here clamp (and the poisoned outputs catch any gap).
  it('clamped grids still cover every output (conv2d, matmul with split-K, bias.backward)', async () => {
    const limits = engine.limits as { maxComputeWorkgroupsPerDimension: number };
    const saved = limits.maxComputeWorkgroupsPerDimension;
    limits.maxComputeWorkgroupsPerDimension = 2;
    try {
      const c = cc(3, 5, 37, 13, 11, 3, 1, 1, 'relu');
      const d = makeData(c, 900);
      const x = engine.fromArray(d.x, d.xShape);
      const w = engine.fromArray(d.w, d.wShape);
      const b = engine.fromArray(d.b, [c.o]);
      const dy = engine.fromArray(d.dy, d.yShape);
      for (const v of kernels.variants('conv2d.forward')) {
        const y = kernels.get('conv2d.forward', engine, v)(x, w, b, { ...c, activation: 'relu' });
        expectClose(await y.toArray(), conv2dRef(d.x, d.xShape, d.w, d.wShape, d.b, c, 'relu'), TOL, `y (${v})`);
      }
      for (const v of kernels.variants('conv2d.backwardInput')) {
        const dx = kernels.get('conv2d.backwardInput', engine, v)(dy, w, d.xShape, c);
        expectClose(await dx.toArray(), conv2dBackwardInputRef(d.dy, d.w, d.xShape, d.wShape, c), TOL, `dx (${v})`);
      }
      for (const v of kernels.variants('conv2d.backwardWeight')) {
        const dw = kernels.get('conv2d.backwardWeight', engine, v)(x, dy, d.wShape, c);
        expectClose(await dw.toArray(), conv2dBackwardWeightRef(d.x, d.dy, d.xShape, d.wShape, c), TOL, `dw (${v})`);
      }
      expectClose(await biasGrad(dy).toArray(), biasGradRef(d.dy, d.yShape), TOL, 'db [3, 37, 13, 11]');
      const r = rng(901);
      const rows = randArray(r, 3000 * 5);
      expectClose(await biasGrad(engine.fromArray(rows, [3000, 5])).toArray(), biasGradRef(rows, [3000, 5]), TOL, 'db [3000, 5]');
      const wide = randArray(r, 2 * 700);
      expectClose(await biasGrad(engine.fromArray(wide, [2, 700])).toArray(), biasGradRef(wide, [2, 700]), TOL, 'db [2, 700]');
      // A long reduction with a few hundred outputs: split-K partials plus their reduction.
      const a = randArray(r, 20 * 4000);
      const bm = randArray(r, 4000 * 50);
      const at = engine.fromArray(a, [20, 4000]);
      const bt = engine.fromArray(bm, [4000, 50]);
      for (const v of kernels.variants('matmul')) {
        const y = kernels.get('matmul', engine, v)(at, bt);
        expectClose(await y.toArray(), matmulRef(a, [20, 4000], bm, [4000, 50]).data, TOL, `matmul (${v})`);
      }
    } finally {
      limits.maxComputeWorkgroupsPerDimension = saved;
    }
  });
});
