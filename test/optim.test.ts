import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { ShapeError } from '../src/gpu/errors.js';
import type { AdamParams, SgdParams } from '../src/kernels/optim.js';
import '../src/kernels/optim.js';
import { kernels } from '../src/kernels/registry.js';
import { adamStepRef, sgdStepRef, type AdamRefState } from '../src/kernels/reference/optim.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';
import { refCases, refData, type RefTensor } from './torch-ref.js';

// Tolerances:
//  - parameters are compared through their change over the steps, (after - before), relative to the
//    largest change: an update is ~lr, far below the float32 resolution of the parameter itself.
//    torch_ref Adam cases: 1e-3 as the README says. Own float64 references: 1e-4 for Adam (the
//    float32 rounding of the stored parameter, ~3e-8, against changes of ~1e-3) and 1e-5 for SGD
//    (changes ~1e-1: lr 0.05, several steps).
//  - moment estimates and the momentum buffer: relative error 1e-5 (a few float32 operations per step;
//    the moments are ~1 to 1e-18, compared relative to their maximum).
type Adam = (p: DeviceTensor, g: DeviceTensor, m: DeviceTensor, v: DeviceTensor, o: AdamParams) => void;
type Sgd = (p: DeviceTensor, g: DeviceTensor, vel: DeviceTensor | null, o: SgdParams) => void;

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const f64 = async (t: DeviceTensor) => Float64Array.from(await t.toArray());
const sub = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v - b[i]);
const shapes = [[1], [4], [3, 5], [5, 3, 3, 3], [3, 5, 7, 9]];

describe.each(kernels.variants('optim.adam'))('adamStep (%s)', (variant) => {
  const adam = () => kernels.get<Adam>('optim.adam', engine, variant);

  describe('torch reference cases', () => {
    const cases = refCases('adam');
    it('has both cases', () => expect(cases.length).toBe(2));
    for (const c of cases) {
      it(`${c.id}: 3 steps, parameter changes and moments`, async () => {
        const { lr, beta1, beta2, eps, weight_decay } = c.params as Record<string, number>;
        const names = ['w', 'b'] as const;
        const state = Object.fromEntries(
          names.map((k) => {
            const t: RefTensor = c.inputs[k];
            return [k, { p: engine.fromArray(refData(t), t.shape), m: engine.zeros(t.shape), v: engine.zeros(t.shape) }];
          }),
        );
        let refBefore: Record<string, Float64Array> = Object.fromEntries(names.map((k) => [k, refData(c.inputs[k])]));
        for (const step of c.steps!) {
          for (const k of names) {
            const s = state[k];
            const before = await f64(s.p);
            const g = engine.fromArray(refData(step.grads[k]), step.grads[k].shape);
            adam()(s.p, g, s.m, s.v, { lr, beta1, beta2, eps, weightDecay: weight_decay, step: step.t });
            const refAfter = refData(step.params_after[k]);
            const what = `step ${step.t} ${k}`;
            expectClose(sub(await f64(s.p), before), sub(refAfter, refBefore[k]), 1e-3, `${what} delta`);
            expectClose(await f64(s.m), refData(step.exp_avg[k]), 1e-5, `${what} exp_avg`);
            expectClose(await f64(s.v), refData(step.exp_avg_sq[k]), 1e-5, `${what} exp_avg_sq`);
            g.dispose();
          }
          refBefore = Object.fromEntries(names.map((k) => [k, refData(step.params_after[k])]));
        }
      });
    }
  });

  for (const shape of shapes) {
    for (const weightDecay of [0, 0.01]) {
      it(`${JSON.stringify(shape)} weightDecay=${weightDecay}: 5 steps match the float64 reference`, async () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const r = rng(n + 13);
        const p0 = randArray(r, n);
        const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay };
        const pt = engine.fromArray(p0, shape);
        const mt = engine.zeros(shape);
        const vt = engine.zeros(shape);
        let ref: AdamRefState = { param: Float64Array.from(p0), expAvg: new Float64Array(n), expAvgSq: new Float64Array(n) };
        for (let t = 1; t <= 5; t++) {
          const g = randArray(r, n, t === 3 ? 50 : 1);
          const gt = engine.fromArray(g, shape);
          adam()(pt, gt, mt, vt, { ...o, step: t });
          ref = adamStepRef(ref.param, g, ref.expAvg, ref.expAvgSq, { ...o, step: t });
          gt.dispose();
        }
        expectClose(sub(await f64(pt), p0), sub(ref.param, p0), 1e-4, 'param change');
        expectClose(await f64(mt), ref.expAvg, 1e-5, 'exp_avg');
        expectClose(await f64(vt), ref.expAvgSq, 1e-5, 'exp_avg_sq');
        for (const t of [pt, mt, vt]) t.dispose();
      });
    }
  }

  it('updates in place and checks sizes', async () => {
    const p = engine.fromArray([1, 2], [2]);
    adam()(p, engine.fromArray([1, -1], [2]), engine.zeros([2]), engine.zeros([2]), {
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      step: 1,
    });
    // First step: m_hat = g, sqrt(v_hat) = |g|, so each parameter moves by lr against the sign of g.
    expectClose(await p.toArray(), [0.9, 2.1], 1e-6, 'param');
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    expect(() => adam()(p, engine.zeros([3]), engine.zeros([2]), engine.zeros([2]), o)).toThrow(ShapeError);
    expect(() => adam()(p, engine.zeros([2]), engine.zeros([2]), engine.zeros([2]), { ...o, step: 0 })).toThrow(RangeError);
  });
});

describe.each(kernels.variants('optim.sgd'))('sgdStep (%s)', (variant) => {
  const sgd = () => kernels.get<Sgd>('optim.sgd', engine, variant);
  const configs: Omit<SgdParams, 'firstStep'>[] = [
    { lr: 0.05, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false },
    { lr: 0.05, momentum: 0, dampening: 0, weightDecay: 0.01, nesterov: false },
    { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false },
    { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0.01, nesterov: true },
    { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: true },
    { lr: 0.05, momentum: 0.5, dampening: 0.1, weightDecay: 0.01, nesterov: false },
  ];
  for (const shape of [[1], [3, 5], [3, 5, 7, 9]]) {
    for (const cfg of configs) {
      it(`${JSON.stringify(shape)} ${JSON.stringify(cfg)}: 5 steps match the float64 reference`, async () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const r = rng(n * 3 + Math.round(cfg.momentum * 10));
        const p0 = randArray(r, n);
        const pt = engine.fromArray(p0, shape);
        const vel = cfg.momentum ? engine.empty(shape) : null; // poisoned: the first step must not read it
        let ref: { param: Float64Array; velocity: Float64Array | null } = { param: Float64Array.from(p0), velocity: null };
        for (let t = 0; t < 5; t++) {
          const g = randArray(r, n);
          const gt = engine.fromArray(g, shape);
          sgd()(pt, gt, vel, { ...cfg, firstStep: t === 0 });
          ref = sgdStepRef(ref.param, g, ref.velocity, { ...cfg, firstStep: t === 0 });
          gt.dispose();
        }
        expectClose(sub(await f64(pt), p0), sub(ref.param, p0), 1e-5, 'param change');
        if (vel) expectClose(await f64(vel), ref.velocity!, 1e-5, 'momentum buffer');
        pt.dispose();
        vel?.dispose();
      });
    }
  }

  it('checks sizes and the momentum buffer', () => {
    const p = engine.zeros([4]);
    const o = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, firstStep: true };
    expect(() => sgd()(p, engine.zeros([5]), engine.zeros([4]), o)).toThrow(ShapeError);
    expect(() => sgd()(p, engine.zeros([4]), engine.zeros([3]), o)).toThrow(ShapeError);
    expect(() => sgd()(p, engine.zeros([4]), null, o)).toThrow(/velocity/);
  });
});

describe('optimizer references', () => {
  it('Adam puts eps after the bias correction of sqrt(v)', () => {
    // One step with g = 2^-24: m_hat = g, sqrt(v_hat) = g, so the step is lr * g / (g + eps), not lr.
    const g = 2 ** -24;
    const r = adamStepRef([0], [g], [0], [0], { lr: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 });
    expect(r.param[0]).toBeCloseTo(-g / (g + 1e-8), 12);
  });

  it('SGD with nesterov steps along g + momentum * buf', () => {
    const r = sgdStepRef([1], [2], [3], { lr: 0.5, momentum: 0.5, dampening: 0, weightDecay: 0, nesterov: true, firstStep: false });
    // buf = 0.5 * 3 + 2 = 3.5; step = 2 + 0.5 * 3.5 = 3.75
    expect(r.velocity![0]).toBe(3.5);
    expect(r.param[0]).toBe(1 - 0.5 * 3.75);
  });
});
