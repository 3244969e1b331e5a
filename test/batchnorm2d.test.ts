import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { ShapeError } from '../src/gpu/errors.js';
import '../src/kernels/batchnorm2d.js';
import { kernels } from '../src/kernels/registry.js';
import {
  batchNorm2dBackwardRef,
  batchNorm2dEvalBackwardRef,
  batchNorm2dEvalRef,
  batchNorm2dTrainRef,
  type BatchNormRefShape,
} from '../src/kernels/reference/batchnorm2d.js';
import { dot, expectClose, numericalGrad, randArray, rng, testEngine } from './helpers.js';
import { expectRef, refCases, refData, refTol } from './torch-ref.js';
import { batchNorm2dBackwardOp, batchNorm2dEvalBackwardOp, batchNorm2dEvalForwardOp, batchNorm2dTrainForwardOp } from '../src/kernels/batchnorm2d.js';

// Tolerances (relative error max|got - exp| / max|exp|, float32 GPU vs float64 reference):
//  - y, mean, inv_std, running stats: 1e-5. Each is a few float32 operations on statistics that are
//    themselves accurate to ~1e-6 (Welford per share + Chan merges, no raw sums of squares).
//  - dx, dgamma, dbeta: 1e-4. They are float32 sums over up to m = N*H*W products, and dx subtracts
//    the channel means of dy and dy*xhat from dy (cancellation).
//  - large-m accuracy tests (m ~ 1.3e5 with the mean 100x the std; 32x32x112x112, m = 401408, mean
//    3x the std): mean 1e-6, variance 1e-5, y 1e-5, backward 1e-4 (measured: 4e-8, 5e-7, 3e-6, 4e-6
//    with a mean 100x the std; a naive float32 E[x^2] - E[x]^2 is off by ~1e-3 there, and a float32
//    running (Welford) mean gave 10x larger errors, hence the shifted two-pass statistics).
//  - GPU float32 finite differences: central differences with h = 1e-2 of sum(dy * y) evaluated in
//    float32 on the GPU, relative error 1e-2 over the checked coordinates (rounding of the float32 sum
//    divided by 2h dominates).
//  - CPU float64 finite differences of the reference: h = 1e-6, relative error 1e-6.
//  - torch_ref cases: the README's max(1e-5, 20 * fp32_torch_err).
const TOL_FWD = 1e-5;
const TOL_BWD = 1e-4;

type Train = (x: DeviceTensor, g: DeviceTensor, b: DeviceTensor, rm: DeviceTensor, rv: DeviceTensor, p: { momentum: number; eps: number }) => {
  y: DeviceTensor;
  mean: DeviceTensor;
  invStd: DeviceTensor;
};
type Bwd = (x: DeviceTensor, dy: DeviceTensor, g: DeviceTensor, mean: DeviceTensor, invStd: DeviceTensor) => {
  dx: DeviceTensor;
  dgamma: DeviceTensor;
  dbeta: DeviceTensor;
};
type EvalFwd = (x: DeviceTensor, g: DeviceTensor, b: DeviceTensor, rm: DeviceTensor, rv: DeviceTensor, eps: number) => DeviceTensor;
type EvalBwd = (x: DeviceTensor, dy: DeviceTensor, g: DeviceTensor, rm: DeviceTensor, rv: DeviceTensor, eps: number) => {
  dx: DeviceTensor;
  dgamma: DeviceTensor;
  dbeta: DeviceTensor;
};

// [N, C, H, W]: batch 1 and 3, channels 1, 3, 5, odd spatial sizes, m = 1 and m = 3 edge cases, a
// channel size that is not a multiple of the share size, and one with the full 256 shares per channel.
const shapes: number[][] = [
  [1, 1, 7, 9],
  [3, 3, 13, 11],
  [3, 5, 7, 9],
  [1, 5, 13, 11],
  [3, 1, 1, 1],
  [1, 3, 1, 1],
  [2, 3, 41, 39],
  [3, 2, 151, 149],
];

const EPS = 1e-5;
const MOMENTUM = 0.1;

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const f32 = (t: DeviceTensor) => t.toArray() as Promise<Float32Array>;
const refShape = (s: number[]): BatchNormRefShape => ({ n: s[0], c: s[1], h: s[2], w: s[3] });

/** x with a per-channel offset and scale, so means are not 0 and variances not 1. */
function makeInputs(seed: number, s: number[]) {
  const r = rng(seed);
  const [n, c, h, w] = s;
  const x = randArray(r, n * c * h * w, 2);
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / (h * w)) % c;
    x[i] = Math.fround(x[i] * (0.5 + ch) + (ch - 1) * 1.5);
  }
  const gamma = Float32Array.from(randArray(r, c), (v) => 1 + 0.5 * v);
  const beta = randArray(r, c);
  const rm = randArray(r, c, 0.5);
  const rv = Float32Array.from(randArray(r, c), (v) => 1 + 0.5 * v);
  const dy = randArray(r, x.length);
  return { x, gamma, beta, rm, rv, dy };
}

function invStdRef(variance: ArrayLike<number>, eps: number): Float64Array {
  return Float64Array.from(variance, (v) => 1 / Math.sqrt(v + eps));
}

describe.each(kernels.variants('batchNorm2d.trainForward'))('batchNorm2d training (%s)', (variant) => {
  const train = () => batchNorm2dTrainForwardOp.get(engine, variant);
  const bwd = () => batchNorm2dBackwardOp.get(engine, variant);

  for (const s of shapes) {
    it(`${JSON.stringify(s)} forward, running stats and backward match the reference`, async () => {
      const inp = makeInputs(s.reduce((a, b) => a * 7 + b, 3), s);
      const xt = engine.fromArray(inp.x, s);
      const gt = engine.fromArray(inp.gamma, [s[1]]);
      const bt = engine.fromArray(inp.beta, [s[1]]);
      const rmt = engine.fromArray(inp.rm, [s[1]]);
      const rvt = engine.fromArray(inp.rv, [s[1]]);
      const dyt = engine.fromArray(inp.dy, s);
      const { y, mean, invStd } = train()(xt, gt, bt, rmt, rvt, { momentum: MOMENTUM, eps: EPS });
      const ref = batchNorm2dTrainRef(inp.x, refShape(s), inp.gamma, inp.beta, inp.rm, inp.rv, MOMENTUM, EPS);
      expectClose(await f32(y), ref.y, TOL_FWD, 'y');
      expectClose(await f32(mean), ref.mean, TOL_FWD, 'mean', 1e-7);
      expectClose(await f32(invStd), invStdRef(ref.var, EPS), TOL_FWD, 'invStd');
      expectClose(await f32(rmt), ref.runningMean, TOL_FWD, 'runningMean');
      expectClose(await f32(rvt), ref.runningVar, TOL_FWD, 'runningVar');

      const g = bwd()(xt, dyt, gt, mean, invStd);
      const gref = batchNorm2dBackwardRef(inp.x, refShape(s), inp.dy, inp.gamma, EPS);
      expectClose(await f32(g.dx), gref.dx, TOL_BWD, 'dx');
      expectClose(await f32(g.dgamma), gref.dgamma, TOL_BWD, 'dgamma');
      expectClose(await f32(g.dbeta), gref.dbeta, TOL_BWD, 'dbeta');
      for (const t of [xt, gt, bt, rmt, rvt, dyt, y, mean, invStd, g.dx, g.dgamma, g.dbeta]) t.dispose();
    });
  }

  it('m = 1 uses the biased variance (0) for running_var, no division by zero', async () => {
    const x = engine.fromArray([3, -2], [1, 2, 1, 1]);
    const ones = engine.fromArray([1, 1], [2]);
    const zeros = engine.fromArray([0, 0], [2]);
    const rm = engine.fromArray([0, 0], [2]);
    const rv = engine.fromArray([1, 1], [2]);
    const { y, mean, invStd } = train()(x, ones, zeros, rm, rv, { momentum: 0.5, eps: EPS });
    expectClose(await f32(y), [0, 0], 0, 'y', 1e-7);
    expectClose(await f32(mean), [3, -2], 1e-7, 'mean');
    expectClose(await f32(invStd), [1 / Math.sqrt(EPS), 1 / Math.sqrt(EPS)], 1e-6, 'invStd');
    expectClose(await f32(rm), [1.5, -1], 1e-7, 'runningMean');
    expectClose(await f32(rv), [0.5, 0.5], 1e-7, 'runningVar');
  });

  it('statistics stay accurate for a large channel with a mean 100x its spread', async () => {
    const s = [4, 2, 181, 179];
    const r = rng(11);
    const n = s.reduce((a, b) => a * b, 1);
    const x = Float32Array.from(randArray(r, n), (v) => 100 + v);
    const c = s[1];
    const gamma = new Float32Array(c).fill(1);
    const beta = new Float32Array(c);
    const xt = engine.fromArray(x, s);
    const gt = engine.fromArray(gamma, [c]);
    const bt = engine.fromArray(beta, [c]);
    // momentum 1: the running stats become the batch mean and the unbiased batch variance.
    const rmt = engine.zeros([c]);
    const rvt = engine.zeros([c]);
    const { y, mean, invStd } = train()(xt, gt, bt, rmt, rvt, { momentum: 1, eps: EPS });
    const ref = batchNorm2dTrainRef(x, refShape(s), gamma, beta, new Float64Array(c), new Float64Array(c), 1, EPS);
    expectClose(await f32(mean), ref.mean, 1e-6, 'mean');
    expectClose(await f32(rmt), ref.runningMean, 1e-6, 'runningMean');
    expectClose(await f32(rvt), ref.runningVar, 1e-5, 'unbiased variance');
    expectClose(await f32(invStd), invStdRef(ref.var, EPS), 1e-5, 'invStd');
    expectClose(await f32(y), ref.y, 1e-5, 'y');
    for (const t of [xt, gt, bt, rmt, rvt, y, mean, invStd]) t.dispose();
  });

  it('float32 finite differences on the GPU agree with the backward pass', async () => {
    const s = [2, 3, 3, 5];
    const inp = makeInputs(5, s);
    const c = s[1];
    const dims = { x: s, gamma: [c], beta: [c] };
    // sum(dy * y) in float64 from a float32 GPU forward.
    const loss = async (x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>) => {
      const t = [engine.fromArray(x, dims.x), engine.fromArray(gamma, dims.gamma), engine.fromArray(beta, dims.beta)];
      const rm = engine.zeros([c]);
      const rv = engine.zeros([c]);
      const out = train()(t[0], t[1], t[2], rm, rv, { momentum: MOMENTUM, eps: EPS });
      const v = dot(await f32(out.y), inp.dy);
      for (const u of [...t, rm, rv, out.y, out.mean, out.invStd]) u.dispose();
      return v;
    };
    const xt = engine.fromArray(inp.x, s);
    const gt = engine.fromArray(inp.gamma, [c]);
    const bt = engine.fromArray(inp.beta, [c]);
    const fwd = train()(xt, gt, bt, engine.zeros([c]), engine.zeros([c]), { momentum: MOMENTUM, eps: EPS });
    const g = bwd()(xt, engine.fromArray(inp.dy, s), gt, fwd.mean, fwd.invStd);
    const analytic = { x: await f32(g.dx), gamma: await f32(g.dgamma), beta: await f32(g.dbeta) };
    const h = 1e-2;
    for (const which of ['x', 'gamma', 'beta'] as const) {
      const base = { x: Array.from(inp.x), gamma: Array.from(inp.gamma), beta: Array.from(inp.beta) };
      const coords = which === 'x' ? [0, 7, 16, 29, 44, 61, 89] : [0, 1, 2];
      const num: number[] = [];
      const ana: number[] = [];
      for (const i of coords) {
        const v = base[which][i];
        base[which][i] = v + h;
        const fp = await loss(base.x, base.gamma, base.beta);
        base[which][i] = v - h;
        const fm = await loss(base.x, base.gamma, base.beta);
        base[which][i] = v;
        num.push((fp - fm) / (2 * h));
        ana.push(analytic[which][i]);
      }
      expectClose(ana, num, 1e-2, `d${which} vs float32 finite differences`);
    }
  });
});

describe.each(kernels.variants('batchNorm2d.evalBackward'))('batchNorm2d eval mode (%s)', (variant) => {
  for (const s of shapes.slice(0, 6)) {
    it(`${JSON.stringify(s)} eval forward and backward match the reference`, async () => {
      const inp = makeInputs(s.reduce((a, b) => a * 5 + b, 1), s);
      const c = s[1];
      const xt = engine.fromArray(inp.x, s);
      const gt = engine.fromArray(inp.gamma, [c]);
      const bt = engine.fromArray(inp.beta, [c]);
      const rmt = engine.fromArray(inp.rm, [c]);
      const rvt = engine.fromArray(inp.rv, [c]);
      const dyt = engine.fromArray(inp.dy, s);
      const y = batchNorm2dEvalForwardOp.get(engine, variant)(xt, gt, bt, rmt, rvt, EPS);
      expectClose(await f32(y), batchNorm2dEvalRef(inp.x, refShape(s), inp.gamma, inp.beta, inp.rm, inp.rv, EPS), TOL_FWD, 'y');
      const g = batchNorm2dEvalBackwardOp.get(engine, variant)(xt, dyt, gt, rmt, rvt, EPS);
      const ref = batchNorm2dEvalBackwardRef(inp.x, refShape(s), inp.dy, inp.gamma, inp.rm, inp.rv, EPS);
      expectClose(await f32(g.dx), ref.dx, TOL_FWD, 'dx');
      expectClose(await f32(g.dgamma), ref.dgamma, TOL_BWD, 'dgamma');
      expectClose(await f32(g.dbeta), ref.dbeta, TOL_BWD, 'dbeta');
      // The running statistics are inputs here: untouched.
      expectClose(await f32(rmt), inp.rm, 0, 'runningMean unchanged');
      expectClose(await f32(rvt), inp.rv, 0, 'runningVar unchanged');
      for (const t of [xt, gt, bt, rmt, rvt, dyt, y, g.dx, g.dgamma, g.dbeta]) t.dispose();
    });
  }

  it('float32 finite differences on the GPU agree with the eval backward pass', async () => {
    const s = [3, 2, 3, 3];
    const inp = makeInputs(9, s);
    const c = s[1];
    const rmt = engine.fromArray(inp.rm, [c]);
    const rvt = engine.fromArray(inp.rv, [c]);
    const loss = async (x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>) => {
      const t = [engine.fromArray(x, s), engine.fromArray(gamma, [c]), engine.fromArray(beta, [c])];
      const y = batchNorm2dEvalForwardOp.get(engine, variant)(t[0], t[1], t[2], rmt, rvt, EPS);
      const v = dot(await f32(y), inp.dy);
      for (const u of [...t, y]) u.dispose();
      return v;
    };
    const g = batchNorm2dEvalBackwardOp.get(engine, variant)(
      engine.fromArray(inp.x, s),
      engine.fromArray(inp.dy, s),
      engine.fromArray(inp.gamma, [c]),
      rmt,
      rvt,
      EPS,
    );
    const analytic = { x: await f32(g.dx), gamma: await f32(g.dgamma), beta: await f32(g.dbeta) };
    const h = 1e-2;
    for (const which of ['x', 'gamma', 'beta'] as const) {
      const base = { x: Array.from(inp.x), gamma: Array.from(inp.gamma), beta: Array.from(inp.beta) };
      const coords = which === 'x' ? [0, 5, 13, 22, 40, 53] : [0, 1];
      const num: number[] = [];
      const ana: number[] = [];
      for (const i of coords) {
        const v = base[which][i];
        base[which][i] = v + h;
        const fp = await loss(base.x, base.gamma, base.beta);
        base[which][i] = v - h;
        const fm = await loss(base.x, base.gamma, base.beta);
        base[which][i] = v;
        num.push((fp - fm) / (2 * h));
        ana.push(analytic[which][i]);
      }
      expectClose(ana, num, 1e-2, `d${which} vs float32 finite differences`);
    }
  });
});

describe('batchNorm2d large tensor (32x32x112x112)', () => {
  it('statistics, y and gradients of every variant agree with the float64 reference', async () => {
    const s = [32, 32, 112, 112];
    const c = s[1];
    const n = s.reduce((a, b) => a * b, 1);
    const r = rng(21);
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.fround(3 + 2 * r.next() - 1);
    const dy = randArray(r, n);
    const gamma = new Float32Array(c).fill(1.25);
    const beta = new Float32Array(c).fill(-0.5);
    const zero = new Float64Array(c);
    const ref = batchNorm2dTrainRef(x, refShape(s), gamma, beta, zero, zero, 1, EPS);
    const gref = batchNorm2dBackwardRef(x, refShape(s), dy, gamma, EPS);
    const xt = engine.fromArray(x, s);
    const dyt = engine.fromArray(dy, s);
    const gt = engine.fromArray(gamma, [c]);
    const bt = engine.fromArray(beta, [c]);
    for (const variant of kernels.variants('batchNorm2d.trainForward')) {
      const rmt = engine.zeros([c]);
      const rvt = engine.zeros([c]);
      const out = batchNorm2dTrainForwardOp.get(engine, variant)(xt, gt, bt, rmt, rvt, { momentum: 1, eps: EPS });
      expectClose(await f32(out.mean), ref.mean, 1e-6, `${variant} mean`);
      expectClose(await f32(rvt), ref.runningVar, 1e-5, `${variant} unbiased variance`);
      expectClose(await f32(out.y), ref.y, 1e-5, `${variant} y`);
      const g = batchNorm2dBackwardOp.get(engine, variant)(xt, dyt, gt, out.mean, out.invStd);
      expectClose(await f32(g.dgamma), gref.dgamma, 1e-4, `${variant} dgamma`);
      expectClose(await f32(g.dbeta), gref.dbeta, 1e-4, `${variant} dbeta`);
      expectClose(await f32(g.dx), gref.dx, 1e-4, `${variant} dx`);
      for (const t of [rmt, rvt, out.y, out.mean, out.invStd, g.dx, g.dgamma, g.dbeta]) t.dispose();
    }
    for (const t of [xt, dyt, gt, bt]) t.dispose();
  });
});

describe('batchNorm2d torch reference cases', () => {
  const cases = refCases('batch_norm2d');
  it('has the NCHW cases', () => expect(cases.length).toBe(2));
  for (const variant of kernels.variants('batchNorm2d.trainForward')) {
    for (const c of cases) {
      it(`${c.id} (${variant})`, async () => {
        const s = c.inputs.x.shape;
        const ch = s[1];
        const { eps, momentum } = c.params as { eps: number; momentum: number };
        const xt = engine.fromArray(refData(c.inputs.x), s);
        const gt = engine.fromArray(refData(c.inputs.gamma), [ch]);
        const bt = engine.fromArray(refData(c.inputs.beta), [ch]);
        const rmt = engine.full([ch], c.params.running_mean_init);
        const rvt = engine.full([ch], c.params.running_var_init);
        const out = batchNorm2dTrainForwardOp.get(engine, variant)(xt, gt, bt, rmt, rvt, { momentum, eps });
        const invStd = await f32(out.invStd);
        expectRef(await f32(out.y), c.outputs.y, refTol(c, 'y'), 'y');
        expectRef(await f32(out.mean), c.outputs.batch_mean, refTol(c, 'batch_mean'), 'batch_mean');
        expectRef(Array.from(invStd, (v) => 1 / (v * v) - eps), c.outputs.batch_var, refTol(c, 'batch_var'), 'batch_var');
        expectRef(await f32(rmt), c.outputs.running_mean, refTol(c, 'running_mean'), 'running_mean');
        expectRef(await f32(rvt), c.outputs.running_var, refTol(c, 'running_var'), 'running_var');
        const dyt = engine.fromArray(refData(c.upstream!.dy), s);
        const g = batchNorm2dBackwardOp.get(engine, variant)(xt, dyt, gt, out.mean, out.invStd);
        expectRef(await f32(g.dx), c.grads.dx, refTol(c, 'dx'), 'dx');
        expectRef(await f32(g.dgamma), c.grads.dgamma, refTol(c, 'dgamma'), 'dgamma');
        expectRef(await f32(g.dbeta), c.grads.dbeta, refTol(c, 'dbeta'), 'dbeta');
      });
    }
  }
});

describe('batchNorm2d reference', () => {
  const s = { n: 2, c: 3, h: 3, w: 2 };
  const r = rng(3);
  const size = s.n * s.c * s.h * s.w;
  const x = Array.from(randArray(r, size, 2));
  const dy = Array.from(randArray(r, size));
  const gamma = Array.from(randArray(r, s.c), (v) => 1 + 0.5 * v);
  const beta = Array.from(randArray(r, s.c));
  const rm = [0.1, -0.2, 0.3];
  const rv = [0.8, 1.3, 0.6];

  it('training backward agrees with finite differences (float64)', () => {
    const ref = batchNorm2dBackwardRef(x, s, dy, gamma, EPS);
    const f = (xs: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>) =>
      dot(batchNorm2dTrainRef(xs, s, g, b, rm, rv, MOMENTUM, EPS).y, dy);
    expectClose(ref.dx, numericalGrad((v) => f(v, gamma, beta), x), 1e-6, 'dx');
    expectClose(ref.dgamma, numericalGrad((v) => f(x, v, beta), gamma), 1e-6, 'dgamma');
    expectClose(ref.dbeta, numericalGrad((v) => f(x, gamma, v), beta), 1e-6, 'dbeta');
  });

  it('eval backward agrees with finite differences (float64)', () => {
    const ref = batchNorm2dEvalBackwardRef(x, s, dy, gamma, rm, rv, EPS);
    const f = (xs: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>) => dot(batchNorm2dEvalRef(xs, s, g, b, rm, rv, EPS), dy);
    expectClose(ref.dx, numericalGrad((v) => f(v, gamma, beta), x), 1e-6, 'dx');
    expectClose(ref.dgamma, numericalGrad((v) => f(x, v, beta), gamma), 1e-6, 'dgamma');
    expectClose(ref.dbeta, numericalGrad((v) => f(x, gamma, v), beta), 1e-6, 'dbeta');
  });

  it('training statistics: biased var normalises, unbiased var updates running_var', () => {
    const ref = batchNorm2dTrainRef([1, 2, 3, 4], { n: 1, c: 1, h: 2, w: 2 }, [1], [0], [0], [1], 0.1, 0);
    expectClose(ref.mean, [2.5], 1e-15, 'mean');
    expectClose(ref.var, [1.25], 1e-15, 'biased var');
    expectClose(ref.runningVar, [0.9 + 0.1 * (5 / 3)], 1e-15, 'running_var');
  });
});

describe('batchNorm2d shape checks', () => {
  it('throws ShapeError naming the op and shapes', () => {
    const x = engine.zeros([2, 3, 4, 4]);
    const c3 = engine.zeros([3]);
    const c4 = engine.zeros([4]);
    const p = { momentum: 0.1, eps: EPS };
    expect(() => batchNorm2dTrainForwardOp.get(engine)(x, c4, c3, c3, c3, p)).toThrow(ShapeError);
    expect(() => batchNorm2dTrainForwardOp.get(engine)(engine.zeros([3, 4]), c3, c3, c3, c3, p)).toThrow(
      /batchNorm2d.trainForward.*\[3,4\]/,
    );
    expect(() => batchNorm2dBackwardOp.get(engine)(x, engine.zeros([2, 3, 4, 5]), c3, c3, c3)).toThrow(
      /dy \[2,3,4,5\] does not match x \[2,3,4,4\]/,
    );
    expect(() => batchNorm2dEvalForwardOp.get(engine)(x, c3, c3, c4, c3, EPS)).toThrow(ShapeError);
  });
});
