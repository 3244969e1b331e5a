import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { ShapeError } from '../src/gpu/errors.js';
import '../src/kernels/loss.js';
import { kernels } from '../src/kernels/registry.js';
import {
  bceBackwardRef,
  bceRef,
  bceWithLogitsBackwardRef,
  bceWithLogitsRef,
  crossEntropyBackwardRef,
  crossEntropyRef,
} from '../src/kernels/reference/loss.js';
import { expectClose, numericalGrad, randArray, rng, testEngine } from './helpers.js';
import { expectRef, refCases, refData, refTol } from './torch-ref.js';

// Tolerances: the loss is a float32 sum of n log/exp terms (chunks of <= 256 summed serially, then a
// tree): 1e-5 relative. Gradients are single float32 expressions per element: 1e-5 of max|grad|.
// GPU finite differences (float32 forward, central differences, h = 1e-2 on inputs of order 1 (p in
// (0.05, 0.95)): truncation O(h^2) times the 3rd derivative plus float32 rounding of the loss ~ 1e-7/h:
// checked at 2e-3 relative to max|grad| (+1e-4 absolute).
const TOL = 1e-5;
const FD_TOL = 2e-3;
const GRAD_OUT = -2.5; // a non-1 upstream gradient for the backward tests

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const get = (op: string, variant?: string) => kernels.get(op, engine, variant);
const scalar = (v: number): DeviceTensor => engine.fromArray([v], []);

function probs(r: ReturnType<typeof rng>, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => 0.05 + 0.9 * r.next());
}
function targets(r: ReturnType<typeof rng>, n: number, soft: boolean): Float32Array {
  return Float32Array.from({ length: n }, () => (soft ? r.next() : r.int(2)));
}

async function readScalar(t: DeviceTensor): Promise<number> {
  expect(t.shape).toEqual([]);
  expect(t.size).toBe(1);
  return (await t.toArray())[0];
}

/** Central float32 differences of a GPU loss at a few coordinates of its first input. */
async function gpuFd(f: (x: DeviceTensor) => DeviceTensor, x: Float32Array, shape: number[], idx: number[], h = 1e-2): Promise<number[]> {
  const out: number[] = [];
  for (const i of idx) {
    const xp = Float32Array.from(x);
    const xm = Float32Array.from(x);
    xp[i] += h;
    xm[i] -= h;
    const fp = await readScalar(f(engine.fromArray(xp, shape)));
    const fm = await readScalar(f(engine.fromArray(xm, shape)));
    out.push((fp - fm) / (xp[i] - xm[i])); // the float32 step actually taken
  }
  return out;
}

function expectFd(got: ArrayLike<number>, fd: number[], idx: number[], what: string): void {
  let scale = 0;
  for (let i = 0; i < got.length; i++) scale = Math.max(scale, Math.abs(got[i]));
  idx.forEach((i, k) => expect(Math.abs(fd[k] - got[i]), `${what} [${i}]`).toBeLessThanOrEqual(FD_TOL * scale + 1e-4));
}

const bceShapes = [[1], [7], [3, 5], [3, 1, 7, 9], [1, 1, 13, 11], [300], [3, 5, 13, 11]];

describe.each(kernels.variants('bce.forward'))('bce (%s)', (variant) => {
  for (const shape of bceShapes) {
    for (const soft of [false, true]) {
      it(`${JSON.stringify(shape)} ${soft ? 'soft' : 'hard'} targets`, async () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const r = rng(n + (soft ? 1 : 0));
        const p = probs(r, n);
        const t = targets(r, n, soft);
        const pt = engine.fromArray(p, shape);
        const tt = engine.fromArray(t, shape);
        const loss = await readScalar(get('bce.forward', variant)(pt, tt));
        expectClose([loss], [bceRef(p, t)], TOL, 'loss');
        for (const bv of kernels.variants('bce.backward')) {
          expectClose(await get('bce.backward', bv)(pt, tt, null).toArray(), bceBackwardRef(p, t), TOL, 'dp');
          const dp = await get('bce.backward', bv)(pt, tt, scalar(GRAD_OUT)).toArray();
          expectClose(dp, bceBackwardRef(p, t, GRAD_OUT), TOL, 'dp with gradOut');
        }
      });
    }
  }

  it('clamps the logs at -100 (p = 0 and p = 1 give finite losses)', async () => {
    const p = new Float32Array([0, 1, 0, 1, 0.5]);
    const t = new Float32Array([1, 0, 0, 1, 0.5]);
    const loss = await readScalar(get('bce.forward', variant)(engine.fromArray(p, [5]), engine.fromArray(t, [5])));
    expectClose([loss], [bceRef(p, t)], TOL, 'clamped loss');
    expect(loss).toBeCloseTo(200 / 5 + Math.LN2 / 5, 4);
  });

  it('GPU backward agrees with float32 finite differences', async () => {
    const r = rng(5);
    const p = probs(r, 12);
    const t = targets(r, 12, true);
    const tt = engine.fromArray(t, [12]);
    const idx = [0, 3, 7, 11];
    const fd = await gpuFd((x) => get('bce.forward', variant)(x, tt), p, [12], idx);
    expectFd(await get('bce.backward')(engine.fromArray(p, [12]), tt, null).toArray(), fd, idx, 'bce dp');
  });

  for (const c of refCases('bce')) {
    it(`torch reference ${c.id}`, async () => {
      const shape = c.inputs.p.shape;
      const p = engine.fromArray(refData(c.inputs.p), shape);
      const t = engine.fromArray(refData(c.inputs.target), shape);
      expectRef([await readScalar(get('bce.forward', variant)(p, t))], c.outputs.loss, refTol(c, 'loss'), `${c.id} loss`);
      expectRef(await get('bce.backward')(p, t, null).toArray(), c.grads.dp, refTol(c, 'dp'), `${c.id} dp`);
    });
  }

  it('rejects mismatched shapes, empty inputs and a non-scalar gradOut', () => {
    const a = engine.fromArray(new Float32Array(6).fill(0.5), [2, 3]);
    const b = engine.fromArray(new Float32Array(6).fill(0.5), [3, 2]);
    expect(() => get('bce.forward', variant)(a, b)).toThrow(ShapeError);
    expect(() => get('bce.forward', variant)(engine.empty([0]), engine.empty([0]))).toThrow(ShapeError);
    expect(() => get('bce.backward')(a, a, a)).toThrow(ShapeError);
  });
});

describe.each(kernels.variants('bceWithLogits.forward'))('bceWithLogits (%s)', (variant) => {
  for (const shape of bceShapes) {
    it(`${JSON.stringify(shape)}`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const r = rng(n * 7);
      const z = randArray(r, n, 6);
      const t = targets(r, n, n % 2 === 1);
      const zt = engine.fromArray(z, shape);
      const tt = engine.fromArray(t, shape);
      expectClose([await readScalar(get('bceWithLogits.forward', variant)(zt, tt))], [bceWithLogitsRef(z, t)], TOL, 'loss');
      for (const bv of kernels.variants('bceWithLogits.backward')) {
        expectClose(await get('bceWithLogits.backward', bv)(zt, tt, null).toArray(), bceWithLogitsBackwardRef(z, t), TOL, 'dz');
        const dz = await get('bceWithLogits.backward', bv)(zt, tt, scalar(GRAD_OUT)).toArray();
        expectClose(dz, bceWithLogitsBackwardRef(z, t, GRAD_OUT), TOL, 'dz with gradOut');
      }
    });
  }

  it('saturates without overflow at +-80', async () => {
    const z = new Float32Array([-80, -30, 80, 30, 0]);
    const t = new Float32Array([0, 1, 1, 0, 0.5]);
    const zt = engine.fromArray(z, [5]);
    const tt = engine.fromArray(t, [5]);
    expectClose([await readScalar(get('bceWithLogits.forward', variant)(zt, tt))], [bceWithLogitsRef(z, t)], TOL, 'loss');
    expectClose(await get('bceWithLogits.backward')(zt, tt, null).toArray(), bceWithLogitsBackwardRef(z, t), TOL, 'dz');
  });

  it('GPU backward agrees with float32 finite differences', async () => {
    const r = rng(6);
    const z = randArray(r, 10, 3);
    const t = targets(r, 10, true);
    const tt = engine.fromArray(t, [10]);
    const idx = [0, 4, 9];
    const fd = await gpuFd((x) => get('bceWithLogits.forward', variant)(x, tt), z, [10], idx);
    expectFd(await get('bceWithLogits.backward')(engine.fromArray(z, [10]), tt, null).toArray(), fd, idx, 'dz');
  });

  for (const c of refCases('bce_with_logits')) {
    it(`torch reference ${c.id}`, async () => {
      const shape = c.inputs.logits.shape;
      const z = engine.fromArray(refData(c.inputs.logits), shape);
      const t = engine.fromArray(refData(c.inputs.target), shape);
      expectRef([await readScalar(get('bceWithLogits.forward', variant)(z, t))], c.outputs.loss, refTol(c, 'loss'), `${c.id} loss`);
      expectRef(await get('bceWithLogits.backward')(z, t, null).toArray(), c.grads.dlogits, refTol(c, 'dlogits'), `${c.id} dlogits`);
    });
  }
});

describe.each(kernels.variants('crossEntropy.forward'))('crossEntropy (%s)', (variant) => {
  const shapes: [number, number][] = [[1, 1], [1, 3], [3, 5], [5, 7], [13, 11], [300, 10], [3, 1000]];
  for (const [rows, k] of shapes) {
    it(`[${rows}, ${k}]`, async () => {
      const r = rng(rows * k);
      const z = randArray(r, rows * k, 8);
      const labels = Int32Array.from({ length: rows }, () => r.int(k));
      const zt = engine.fromArray(z, [rows, k]);
      const lt = engine.fromArray(labels, [rows]);
      expectClose([await readScalar(get('crossEntropy.forward', variant)(zt, lt))], [crossEntropyRef(z, labels, k)], TOL, 'loss');
      for (const bv of kernels.variants('crossEntropy.backward')) {
        const dz = await get('crossEntropy.backward', bv)(zt, lt, null).toArray();
        expectClose(dz, crossEntropyBackwardRef(z, labels, k), TOL, 'dz');
        const dz2 = await get('crossEntropy.backward', bv)(zt, lt, scalar(GRAD_OUT)).toArray();
        expectClose(dz2, crossEntropyBackwardRef(z, labels, k, GRAD_OUT), TOL, 'dz with gradOut');
      }
    });
  }

  it('rows reaching +-100 do not overflow', async () => {
    const z = new Float32Array([100, -100, 0, 99, 50, 100, -1000, 1000, 0]);
    const labels = new Int32Array([0, 2, 1]);
    const zt = engine.fromArray(z, [3, 3]);
    const lt = engine.fromArray(labels, [3]);
    expectClose([await readScalar(get('crossEntropy.forward', variant)(zt, lt))], [crossEntropyRef(z, labels, 3)], TOL, 'loss');
    expectClose(await get('crossEntropy.backward')(zt, lt, null).toArray(), crossEntropyBackwardRef(z, labels, 3), TOL, 'dz');
  });

  it('out-of-range labels do not read out of bounds (clamped into [0, K))', async () => {
    const z = new Float32Array([1, 2, 3, 4, 5, 6]);
    const zt = engine.fromArray(z, [2, 3]);
    const lt = engine.fromArray(new Int32Array([-5, 99]), [2]);
    const loss = await readScalar(get('crossEntropy.forward', variant)(zt, lt));
    expectClose([loss], [crossEntropyRef(z, [0, 2], 3)], TOL, 'clamped loss');
    const dz = await get('crossEntropy.backward')(zt, lt, null).toArray();
    expectClose(dz, crossEntropyBackwardRef(z, [0, 2], 3), TOL, 'clamped dz');
  });

  it('GPU backward agrees with float32 finite differences', async () => {
    const r = rng(8);
    const z = randArray(r, 12, 3);
    const lt = engine.fromArray(new Int32Array([1, 0, 3]), [3]);
    const idx = [0, 1, 6, 11];
    const fd = await gpuFd((x) => get('crossEntropy.forward', variant)(x, lt), z, [3, 4], idx);
    expectFd(await get('crossEntropy.backward')(engine.fromArray(z, [3, 4]), lt, null).toArray(), fd, idx, 'dz');
  });

  for (const c of refCases('softmax_cross_entropy')) {
    it(`torch reference ${c.id}`, async () => {
      const shape = c.inputs.logits.shape;
      const z = engine.fromArray(refData(c.inputs.logits), shape);
      const labels = engine.fromArray(Int32Array.from(refData(c.inputs.labels)), c.inputs.labels.shape);
      expectRef([await readScalar(get('crossEntropy.forward', variant)(z, labels))], c.outputs.loss, refTol(c, 'loss'), `${c.id} loss`);
      expectRef(await get('crossEntropy.backward')(z, labels, null).toArray(), c.grads.dlogits, refTol(c, 'dlogits'), `${c.id} dlogits`);
    });
  }

  it('rejects wrong label shapes and dtypes', () => {
    const z = engine.fromArray(new Float32Array(6), [2, 3]);
    expect(() => get('crossEntropy.forward', variant)(z, engine.fromArray(new Int32Array(3), [3]))).toThrow(ShapeError);
    expect(() => get('crossEntropy.forward', variant)(z, engine.fromArray(new Float32Array(2), [2]))).toThrow(ShapeError);
    expect(() => get('crossEntropy.forward', variant)(engine.fromArray(new Float32Array(6), [6]), engine.fromArray(new Int32Array(6), [6]))).toThrow(ShapeError);
  });
});

describe('loss references agree with float64 finite differences', () => {
  const r = rng(4);
  it('bce', () => {
    const p = Array.from(probs(r, 9));
    const t = Array.from(targets(r, 9, true));
    expectClose(bceBackwardRef(p, t, GRAD_OUT), numericalGrad((x) => GRAD_OUT * bceRef(x, t), p), 1e-7, 'bce');
  });
  it('bce with logits', () => {
    const z = Array.from(randArray(r, 9, 5));
    const t = Array.from(targets(r, 9, true));
    expectClose(bceWithLogitsBackwardRef(z, t, GRAD_OUT), numericalGrad((x) => GRAD_OUT * bceWithLogitsRef(x, t), z), 1e-7, 'bcel');
  });
  it('cross-entropy', () => {
    const z = Array.from(randArray(r, 12, 4));
    const labels = [2, 0, 3];
    expectClose(
      crossEntropyBackwardRef(z, labels, 4, GRAD_OUT),
      numericalGrad((x) => GRAD_OUT * crossEntropyRef(x, labels, 4), z),
      1e-7,
      'ce',
    );
  });
});
