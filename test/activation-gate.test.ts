// A fused activation's backward folded into the backward passes (ActivationGate, src/kernels/activation.ts):
// every variant of every op that takes a gate (conv2d, convTranspose2d and linear d/dx and d/dw, bias
// d/db) reads dy as dy * act'(y). Checked against the float64 references applied to
// dz = activationBackwardRef(z, dy), the derivative taken from the pre-activation z (not from y, as the
// kernels do), for the four activations, on awkward shapes (odd sizes, stride 2, padding; and shapes whose
// rows are multiples of 4, so the vec4 readers run gated), on poisoned engines with and without
// subgroups; with the tensors split over bindings of 4 KiB; and through F with the fold on and off.
// Tolerance: relative error (max |diff| / max |expected|) <= 1e-4, float32 sums of at most a few hundred
// products, as in conv2d.test.ts and dense.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { ShapeError } from '../src/gpu/errors.js';
import type { Activation, ActivationGate } from '../src/kernels/activation.js';
import { conv2dBackwardInputOp, conv2dBackwardWeightOp } from '../src/kernels/conv2d.js';
import { convTranspose2dBackwardInputOp, convTranspose2dBackwardWeightOp } from '../src/kernels/conv-transpose2d.js';
import { linearBackwardInputOp, linearBackwardWeightOp } from '../src/kernels/dense.js';
import { biasBackwardOp } from '../src/kernels/bias-grad.js';
import { activationBackwardRef, activationRef } from '../src/kernels/reference/activation.js';
import { conv2dBackwardInputRef, conv2dBackwardWeightRef, convOutSize } from '../src/kernels/reference/conv2d.js';
import { convTranspose2dBackwardInputRef, convTranspose2dBackwardWeightRef, convTransposeOutSize } from '../src/kernels/reference/conv-transpose2d.js';
import { biasGradRef, linearBackwardInputRef, linearBackwardWeightRef } from '../src/kernels/reference/dense.js';
import { F } from '../src/nn/index.js';
import type { ActivationBackward } from '../src/nn/functional.js';
import { expectClose, randArray, rng } from './helpers.js';
import { describeDevice, gemmTestEngines, variantRuns } from './gemm-helpers.js';

const TOL = 1e-4;
const SLOPE = 0.2;
const ACTS: Exclude<Activation, 'none'>[] = ['relu', 'leakyRelu', 'sigmoid', 'tanh'];
/**
 * The activations checked on case i of a list: all four on the first case, one each (in turn) on the
 * others (every activation is its own pipeline: this keeps the file's compile time down).
 */
const actsFor = <T>(cases: T[], c: T): Exclude<Activation, 'none'>[] => {
  const i = cases.indexOf(c);
  return i === 0 ? ACTS : [ACTS[i % ACTS.length]];
};

let engine: Engine;
let sgEngine: Engine;
const engineFor = gemmTestEngines((plain, subgroups) => ([engine, sgEngine] = [plain, subgroups]));

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A pre-activation z, the forward output y = act(z) (f32, as the GPU holds it), dy, and dz = dy * act'(z) in float64. */
function gated(seed: number, shape: readonly number[], act: Exclude<Activation, 'none'>) {
  const r = rng(seed);
  const n = size(shape);
  const z = randArray(r, n, 2);
  const y = Float32Array.from(activationRef(z, act, SLOPE));
  const dy = randArray(r, n);
  const dz = activationBackwardRef(z, dy, act, SLOPE);
  return { y, dy, dz };
}

const gateOf = (e: Engine, y: Float32Array, shape: readonly number[], act: Activation): ActivationGate => ({
  y: e.fromArray(y, shape),
  activation: act,
  slope: SLOPE,
});

type Pair = [number, number];
interface ConvCase {
  n: number; ci: number; co: number; h: number; w: number; k: number; s: number; p: number;
}
// Odd sizes, stride 2 with padding, and 8x8 images (pixel counts that are multiples of 4: the vec4 readers).
const CONV_CASES: ConvCase[] = [
  { n: 2, ci: 3, co: 5, h: 7, w: 6, k: 3, s: 2, p: 1 },
  { n: 3, ci: 4, co: 8, h: 8, w: 8, k: 3, s: 1, p: 1 },
  { n: 1, ci: 2, co: 3, h: 5, w: 9, k: 2, s: 1, p: 0 },
  // conv2d: a 1x1 dy whose kernel covers x, the input gradient as one plain GEMM (its A operand gated).
  { n: 3, ci: 6, co: 5, h: 4, w: 4, k: 4, s: 1, p: 0 },
  // conv2d: 1 input channel under 9 output channels, the input gradient in column form (GEMM into columns
  // with dy gated, then col2im; src/kernels/conv2d.ts columnForm).
  { n: 2, ci: 1, co: 9, h: 9, w: 7, k: 4, s: 2, p: 1 },
];
const params = (c: ConvCase) => ({ stride: [c.s, c.s] as Pair, padding: [c.p, c.p] as Pair });

/**
 * A gated backward op, tested on every variant: `run(variant, e, c, act)` calls it with a gate on case
 * c's data and returns the result and its float64 reference (computed on dz = dy * act'(z)).
 */
function describeGated<C extends object>(
  op: string,
  cases: C[],
  title: string,
  run: (variant: string, e: Engine, c: C, act: Exclude<Activation, 'none'>) => { got: DeviceTensor; expected: Float64Array },
): void {
  describe.each(variantRuns(op))(`${op} with a gate, variant %s (%s device)`, (variant, device) => {
    it.each(cases)(title, async (c) => {
      const e = engineFor(device);
      for (const act of actsFor(cases, c)) {
        const { got, expected } = run(variant, e, c, act);
        expectClose(await got.toArray(), expected, TOL, `${JSON.stringify(c)} ${act} ${describeDevice(e)}`);
      }
    });
  });
}

/** Shapes of a conv case: x, w (OIHW for conv2d, [Cin, Cout, k, k] for convTranspose2d) and y = dy. */
function convShapes(c: ConvCase, transposed: boolean) {
  const xs = [c.n, c.ci, c.h, c.w];
  const ws = transposed ? [c.ci, c.co, c.k, c.k] : [c.co, c.ci, c.k, c.k];
  const [oh, ow] = (transposed ? convTransposeOutSize : convOutSize)(c.h, c.w, c.k, c.k, params(c));
  return { xs, ws, ys: [c.n, c.co, oh, ow] };
}
const CONV_TITLE = 'x [$n, $ci, $h, $w] k$k s$s p$p -> $co';

describeGated('conv2d.backwardInput', CONV_CASES, CONV_TITLE, (variant, e, c, act) => {
  const { xs, ws, ys } = convShapes(c, false);
  const wd = randArray(rng(3), size(ws));
  const { y, dy, dz } = gated(11, ys, act);
  const got = conv2dBackwardInputOp.get(e, variant)(e.fromArray(dy, ys), e.fromArray(wd, ws), xs, { ...params(c), gate: gateOf(e, y, ys, act) });
  return { got, expected: conv2dBackwardInputRef(dz, wd, xs, ws, params(c)) };
});

describeGated('conv2d.backwardWeight', CONV_CASES, CONV_TITLE, (variant, e, c, act) => {
  const { xs, ws, ys } = convShapes(c, false);
  const xd = randArray(rng(5), size(xs));
  const { y, dy, dz } = gated(13, ys, act);
  const got = conv2dBackwardWeightOp.get(e, variant)(e.fromArray(xd, xs), e.fromArray(dy, ys), ws, { ...params(c), gate: gateOf(e, y, ys, act) });
  return { got, expected: conv2dBackwardWeightRef(xd, dz, xs, ws, params(c)) };
});

// convTranspose2d: x [n, ci, h, w], w [ci, co, k, k], y (and dy) [n, co, Ho, Wo].
const CT_CASES: ConvCase[] = [
  { n: 2, ci: 5, co: 3, h: 4, w: 3, k: 4, s: 2, p: 1 },
  { n: 2, ci: 6, co: 4, h: 4, w: 4, k: 3, s: 2, p: 1 },
];

describeGated('convTranspose2d.backwardInput', CT_CASES, CONV_TITLE, (variant, e, c, act) => {
  const { xs, ws, ys } = convShapes(c, true);
  const wd = randArray(rng(7), size(ws));
  const { y, dy, dz } = gated(17, ys, act);
  const got = convTranspose2dBackwardInputOp.get(e, variant)(e.fromArray(dy, ys), e.fromArray(wd, ws), xs, { ...params(c), gate: gateOf(e, y, ys, act) });
  return { got, expected: convTranspose2dBackwardInputRef(dz, wd, xs, ws, params(c)) };
});

describeGated('convTranspose2d.backwardWeight', CT_CASES, CONV_TITLE, (variant, e, c, act) => {
  const { xs, ws, ys } = convShapes(c, true);
  const xd = randArray(rng(9), size(xs));
  const { y, dy, dz } = gated(19, ys, act);
  const got = convTranspose2dBackwardWeightOp.get(e, variant)(e.fromArray(xd, xs), e.fromArray(dy, ys), ws, { ...params(c), gate: gateOf(e, y, ys, act) });
  return { got, expected: convTranspose2dBackwardWeightRef(xd, dz, xs, ws, params(c)) };
});

// linear: odd sizes, and rows of multiples of 4 (the vec4 readers run gated).
const DENSE_CASES = [
  { n: 5, inF: 7, outF: 9 },
  { n: 16, inF: 32, outF: 24 },
  { n: 33, inF: 12, outF: 1 },
];
const DENSE_TITLE = 'n $n, in $inF, out $outF';

describeGated('linear.backwardInput', DENSE_CASES, DENSE_TITLE, (variant, e, { n, inF, outF }, act) => {
  const wd = randArray(rng(21), outF * inF);
  const { y, dy, dz } = gated(23, [n, outF], act);
  const got = linearBackwardInputOp.get(e, variant)(e.fromArray(dy, [n, outF]), e.fromArray(wd, [outF, inF]), { gate: gateOf(e, y, [n, outF], act) });
  return { got, expected: linearBackwardInputRef(dz, wd, n, inF, outF) };
});

describeGated('linear.backwardWeight', DENSE_CASES, DENSE_TITLE, (variant, e, { n, inF, outF }, act) => {
  const xd = randArray(rng(25), n * inF);
  const { y, dy, dz } = gated(27, [n, outF], act);
  const got = linearBackwardWeightOp.get(e, variant)(e.fromArray(xd, [n, inF]), e.fromArray(dy, [n, outF]), { gate: gateOf(e, y, [n, outF], act) });
  return { got, expected: linearBackwardWeightRef(xd, dz, n, inF, outF) };
});

describe.each(variantRuns('bias.backward'))('bias.backward with a gate, variant %s', (variant) => {
  // [N, C]; [N, C, H, W] with H*W odd, and a multiple of 4 (the vec4 entry).
  it.each([[7, 5], [2, 3, 5, 3], [3, 4, 4, 6]])('dy [%i, %i, ...]', async (...shape) => {
    const e = engine;
    for (const act of ACTS) {
      const { y, dy, dz } = gated(29, shape, act);
      const db = biasBackwardOp.get(e, variant)(e.fromArray(dy, shape), gateOf(e, y, shape, act));
      expectClose(await db.toArray(), biasGradRef(dz, shape), TOL, `${act}`);
    }
  });
});

describe('activation gate: errors and splits', () => {
  it('a gate whose y does not have dy\'s shape, or with no activation, is a clear error', () => {
    const dy = engine.fromArray(randArray(rng(31), 12), [3, 4]);
    const w = engine.fromArray(randArray(rng(32), 8), [4, 2]);
    const wrong: ActivationGate = { y: engine.fromArray(randArray(rng(33), 12), [4, 3]), activation: 'relu', slope: 0.01 };
    expect(() => linearBackwardInputOp.get(engine)(dy, w, { gate: wrong })).toThrow(ShapeError);
    expect(() => linearBackwardInputOp.get(engine)(dy, w, { gate: wrong })).toThrow(/activation gate's y \[4, 3\].*dy's shape \[3, 4\]/);
    const none: ActivationGate = { y: engine.fromArray(randArray(rng(34), 12), [3, 4]), activation: 'none', slope: 0.01 };
    expect(() => biasBackwardOp.get(engine)(dy, none)).toThrow(/needs an activation/);
  });

  it('tensors split over bindings of 4 KiB: the gate is split with dy (conv d/dx, d/dw, db; linear d/dx, d/dw)', async () => {
    const split = await Engine.create({ poisonAllocations: true, maxBindingBytes: 4096, bindingOffsetAlignment: 256 });
    try {
      // y and dy [6, 4, 8, 8]: 6 KiB each, split into ranges of images.
      const c: ConvCase = { n: 6, ci: 3, co: 4, h: 8, w: 8, k: 3, s: 1, p: 1 };
      const xs = [c.n, c.ci, c.h, c.w];
      const ws = [c.co, c.ci, c.k, c.k];
      const ys = [c.n, c.co, c.h, c.w];
      const xd = randArray(rng(41), size(xs));
      const wd = randArray(rng(42), size(ws));
      const { y, dy, dz } = gated(43, ys, 'tanh');
      const gate = gateOf(split, y, ys, 'tanh');
      const dyT = split.fromArray(dy, ys);
      const dx = conv2dBackwardInputOp.get(split)(dyT, split.fromArray(wd, ws), xs, { ...params(c), gate });
      const dw = conv2dBackwardWeightOp.get(split)(split.fromArray(xd, xs), dyT, ws, { ...params(c), gate });
      const db = biasBackwardOp.get(split)(dyT, gate);
      expectClose(await dx.toArray(), conv2dBackwardInputRef(dz, wd, xs, ws, params(c)), TOL, 'conv dx');
      expectClose(await dw.toArray(), conv2dBackwardWeightRef(xd, dz, xs, ws, params(c)), TOL, 'conv dw');
      expectClose(await db.toArray(), biasGradRef(dz, ys), TOL, 'conv db');
      // linear: dy [80, 20] (6.25 KiB) split by rows.
      const [n, inF, outF] = [80, 6, 20];
      const l = gated(44, [n, outF], 'leakyRelu');
      const lx = randArray(rng(45), n * inF);
      const lw = randArray(rng(46), outF * inF);
      const lgate = gateOf(split, l.y, [n, outF], 'leakyRelu');
      const ldy = split.fromArray(l.dy, [n, outF]);
      const ldx = linearBackwardInputOp.get(split)(ldy, split.fromArray(lw, [outF, inF]), { gate: lgate });
      const ldw = linearBackwardWeightOp.get(split)(split.fromArray(lx, [n, inF]), ldy, { gate: lgate });
      expectClose(await ldx.toArray(), linearBackwardInputRef(l.dz, lw, n, inF, outF), TOL, 'linear dx');
      expectClose(await ldw.toArray(), linearBackwardWeightRef(lx, l.dz, n, inF, outF), TOL, 'linear dw');
    } finally {
      split.destroy();
    }
  });
});

describe('F: the fused activation backward folded or as its own pass', () => {
  let previous: ActivationBackward;
  beforeAll(() => {
    previous = F.setActivationBackward('auto');
  });
  afterAll(() => {
    F.setActivationBackward(previous);
  });

  /** Gradients of sum(g * layer(x)) for F.conv2d, F.convTranspose2d and F.linear with a fused activation, in `mode`. */
  async function grads(mode: ActivationBackward, act: Exclude<Activation, 'none'>) {
    F.setActivationBackward(mode);
    const r = rng(51);
    const e = engine;
    const t = (shape: number[], grad = true) => e.tensor(randArray(r, size(shape)), shape, { requiresGrad: grad });
    const out: Record<string, ArrayLike<number>> = {};
    const layers: [string, () => { y: ReturnType<typeof F.conv2d>; params: ReturnType<typeof t>[] }][] = [
      ['conv2d', () => {
        const [x, w, b] = [t([2, 3, 7, 6]), t([5, 3, 3, 3]), t([5])];
        return { y: F.conv2d(x, w, b, { stride: 2, padding: 1, activation: act, slope: SLOPE }), params: [x, w, b] };
      }],
      ['convTranspose2d', () => {
        const [x, w, b] = [t([2, 4, 3, 4]), t([4, 3, 4, 4]), t([3])];
        return { y: F.convTranspose2d(x, w, b, { stride: 2, padding: 1, activation: act, slope: SLOPE }), params: [x, w, b] };
      }],
      ['linear', () => {
        const [x, w, b] = [t([6, 10]), t([7, 10]), t([7])];
        return { y: F.linear(x, w, b, { activation: act, slope: SLOPE }), params: [x, w, b] };
      }],
    ];
    for (const [name, make] of layers) {
      const { y, params: ps } = make();
      const g = e.tensor(randArray(r, y.size), y.shape);
      F.sum(F.mul(y, g)).backward();
      for (const [i, p] of ps.entries()) out[`${name} d${'xwb'[i]}`] = await p.grad!.toArray();
    }
    return out;
  }

  it.each(ACTS)("'folded' and 'separate' give the same gradients (%s)", async (act) => {
    const folded = await grads('folded', act);
    const separate = await grads('separate', act);
    for (const k of Object.keys(separate)) expectClose(folded[k], separate[k], TOL, k);
  });

  it("'folded' records fewer dispatches than 'separate' (no activation-backward pass)", () => {
    const count = (mode: ActivationBackward) => {
      F.setActivationBackward(mode);
      const r = rng(52);
      const x = engine.tensor(randArray(r, 6 * 10), [6, 10], { requiresGrad: true });
      const w = engine.tensor(randArray(r, 70), [7, 10], { requiresGrad: true });
      const b = engine.tensor(randArray(r, 7), [7], { requiresGrad: true });
      const loss = F.sum(F.linear(x, w, b, { activation: 'tanh' }));
      const d0 = engine.dispatchCount;
      loss.backward();
      return engine.dispatchCount - d0;
    };
    expect(count('folded')).toBe(count('separate') - 1);
  });

  it('an unknown mode is a clear error', () => {
    expect(() => F.setActivationBackward('fused' as ActivationBackward)).toThrow(/'auto', 'folded' or 'separate'/);
  });
});
