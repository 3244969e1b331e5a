import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { ShapeError } from '../src/gpu/errors.js';
import { adamMultiSlots, adamMultiStep, type AdamParams, type SgdParams } from '../src/kernels/optim.js';
import '../src/kernels/optim.js';
import { kernels } from '../src/kernels/registry.js';
import type { Tensor } from '../src/nn/tensor.js';
import { adamStepRef, sgdStepRef, type AdamRefState } from '../src/kernels/reference/optim.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';
import * as F from '../src/nn/functional.js';
import { Conv2d, Linear, MaxPool2d, ReLU, Sequential, Flatten } from '../src/nn/modules.js';
import { Adam as AdamOptimizer } from '../src/nn/optim.js';
import { manualSeed } from '../src/nn/seed.js';
import { refCases, refData, type RefTensor } from './torch-ref.js';
import { optimAdamOp, optimSgdOp } from '../src/kernels/optim.js';

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
  const adam = () => optimAdamOp.get(engine, variant);

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

describe('multi-tensor Adam (optim.adamMulti)', () => {
  // Bit-identical to adamStep: the same float32 operations per element, whatever the grouping.
  const shapes = [[1], [4], [3, 5], [5, 3, 3, 3], [3, 5, 7, 9], [257], [2, 2], [7], [300, 11]];
  // Two layouts of the moments: packed after 5 unused elements (no offset a multiple of 4: every parameter
  // takes the scalar entry points), and aligned to 4 elements (parameters of 4k elements take the vec4 ones).
  for (const [slots, aligned] of [[3, false], [7, false], [3, true], [7, true]] as const) {
    it(`${shapes.length} parameters, ${slots} per dispatch, moments ${aligned ? 'aligned to 4' : 'packed'}, 3 steps with weight decay: bit for bit adamStep`, async () => {
      if (slots > adamMultiSlots(engine)) return; // this device binds fewer storage buffers: 3 per dispatch only
      const r = rng(slots);
      const o = { lr: 3e-3, beta1: 0.8, beta2: 0.99, eps: 1e-8, weightDecay: 0.01 };
      const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
      const offsets: number[] = [];
      let end = 5; // 5 unused elements first
      for (const n of sizes) {
        if (aligned) end = Math.ceil(end / 4) * 4;
        offsets.push(end);
        end += n;
      }
      const total = end;
      const wide = sizes.filter((n, i) => aligned && n % 4 === 0 && offsets[i] % 4 === 0).length;
      expect(wide).toBe(aligned ? 3 : 0); // [4], [2, 2], [300, 11]
      const init = shapes.map((s, i) => randArray(r, sizes[i]));
      const single = shapes.map((s, i) => ({ p: engine.fromArray(init[i], s), m: engine.zeros(s), v: engine.zeros(s) }));
      const multi = shapes.map((s, i) => engine.fromArray(init[i], s));
      const m = engine.zeros([total]);
      const v = engine.zeros([total]);
      const d0 = engine.dispatchCount;
      for (let t = 1; t <= 3; t++) {
        const grads = shapes.map((s, i) => engine.fromArray(randArray(r, sizes[i], t === 2 ? 30 : 1), s));
        shapes.forEach((_, i) => optimAdamOp.get(engine)(single[i].p, grads[i], single[i].m, single[i].v, { ...o, step: t }));
        adamMultiStep(shapes.map((_, i) => ({ param: multi[i], grad: grads[i], offset: offsets[i] })), m, v, { ...o, step: t }, slots);
        grads.forEach((g) => g.dispose());
      }
      expect(engine.dispatchCount - d0).toBe(3 * (shapes.length + Math.ceil(wide / slots) + Math.ceil((shapes.length - wide) / slots)));
      const [mAll, vAll] = [await m.toArray(), await v.toArray()];
      for (let i = 0; i < shapes.length; i++) {
        const what = `parameter ${i} ${JSON.stringify(shapes[i])}`;
        expect(Array.from(await multi[i].toArray()), `${what} param`).toEqual(Array.from(await single[i].p.toArray()));
        expect(Array.from(mAll.subarray(offsets[i], offsets[i] + sizes[i])), `${what} exp_avg`).toEqual(Array.from(await single[i].m.toArray()));
        expect(Array.from(vAll.subarray(offsets[i], offsets[i] + sizes[i])), `${what} exp_avg_sq`).toEqual(Array.from(await single[i].v.toArray()));
      }
      expect(Array.from(mAll.subarray(0, 5))).toEqual([0, 0, 0, 0, 0]);
      for (const t of [...single.flatMap((x) => [x.p, x.m, x.v]), ...multi, m, v]) t.dispose();
    });
  }

  it('nn Adam: a training step of a small CNN updates its 6 parameters in few dispatches (vec4 for 4k elements, scalar for the rest) and reads nothing back', async () => {
    manualSeed(5);
    const net = new Sequential(
      new Conv2d(1, 4, 3, { engine }), new ReLU(), new MaxPool2d(2),
      new Conv2d(4, 8, 3, { engine }), new ReLU(), new Flatten(), new Linear(8 * 3 * 3, 3, { engine }),
    );
    const params = net.parameters();
    expect(params.length).toBe(6);
    const opt = new AdamOptimizer(params, { lr: 1e-2 });
    const r = rng(3);
    const read = engine.read.bind(engine);
    let reads = 0;
    engine.read = (...args: Parameters<typeof engine.read>) => {
      reads++;
      return read(...args);
    };
    const losses: Tensor[] = [];
    try {
      for (let step = 0; step < 3; step++) {
        losses.push(engine.tidy(() => {
          const x = engine.tensor(randArray(r, 5 * 12 * 12), [5, 1, 12, 12]);
          const labels = engine.tensor(Int32Array.from([0, 1, 2, 1, 0]), [5]);
          opt.zeroGrad();
          const loss = F.crossEntropy(net.forward(x), labels);
          loss.backward();
          const d0 = engine.dispatchCount;
          opt.step();
          // 5 parameters of 4k elements (vec4) and the 3-element bias (scalar).
          expect(engine.dispatchCount - d0).toBe(Math.ceil(5 / adamMultiSlots(engine)) + 1);
          return loss;
        }));
      }
      expect(reads).toBe(0);
    } finally {
      engine.read = read;
    }
    const values = await Promise.all(losses.map((l) => l.item()));
    expect(values.every(Number.isFinite)).toBe(true);
    expect(values[2]).toBeLessThan(values[0]);
    losses.forEach((l) => l.dispose());
    opt.dispose();
  });

  it('checks sizes, offsets and the step', () => {
    const p = engine.zeros([4]);
    const m = engine.zeros([6]);
    const v = engine.zeros([6]);
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    expect(() => adamMultiStep([{ param: p, grad: engine.zeros([3]), offset: 0 }], m, v, o)).toThrow(ShapeError);
    expect(() => adamMultiStep([{ param: p, grad: engine.zeros([4]), offset: 3 }], m, v, o)).toThrow(/outside the state buffers/);
    expect(() => adamMultiStep([{ param: p, grad: engine.zeros([4]), offset: 0 }], m, engine.zeros([5]), o)).toThrow(ShapeError);
    expect(() => adamMultiStep([{ param: p, grad: engine.zeros([4]), offset: 0 }], m, v, { ...o, step: 0 })).toThrow(RangeError);
  });
});

describe.each(kernels.variants('optim.sgd'))('sgdStep (%s)', (variant) => {
  const sgd = () => optimSgdOp.get(engine, variant);
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
