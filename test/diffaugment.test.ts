import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { ShapeError } from '../src/gpu/errors.js';
import { F, Tensor } from '../src/nn/index.js';
import {
  diffAugmentPlan,
  drawColor,
  drawCutout,
  drawTranslation,
  PARAMS_PER_SAMPLE,
  sampleMean,
  type DiffAugmentPolicy,
} from '../src/kernels/diffaugment.js';
import { kernels } from '../src/kernels/registry.js';
import {
  colorAdjointRef,
  colorRef,
  cutoutRef,
  translateAdjointRef,
  translateRef,
  type Nchw,
} from '../src/kernels/reference/diffaugment.js';
import { Rng } from '../src/util/rng.js';
import { dot, expectClose, numericalGrad, randArray, rng, testEngine } from './helpers.js';

// Tolerances:
//  - translation and cutout only copy or zero elements: the GPU must equal the reference exactly;
//  - colour (forward and backward): relative error 1e-5 (float32 sample means over at most 4096
//    terms summed in a 64-way tree, then a few float32 operations per element);
//  - CPU float64 finite differences of the reference: h = 1e-6, relative error 1e-8 (all ops are
//    affine in x, so only rounding remains);
//  - GPU float32 finite differences: h = 1e-2, relative error 1e-3 (affine ops: the float32 rounding
//    of the changed outputs, ~1e-7 * sqrt(#outputs) / 2h ~ 1e-4, is all that remains).
type Op = 'translation' | 'cutout' | 'color';
type Kernel = (a: DeviceTensor, params: DeviceTensor) => DeviceTensor;

const registryOps: Record<Op, [string, string]> = {
  translation: ['diffAugment.translate', 'diffAugment.translateBackward'],
  cutout: ['diffAugment.cutout', 'diffAugment.cutoutBackward'],
  color: ['diffAugment.color', 'diffAugment.colorBackward'],
};

const reference: Record<Op, { forward: RefFn; adjoint: RefFn }> = {
  translation: { forward: translateRef, adjoint: translateAdjointRef },
  cutout: { forward: cutoutRef, adjoint: cutoutRef },
  color: { forward: colorRef, adjoint: colorAdjointRef },
};
type RefFn = (x: ArrayLike<number>, shape: Nchw, params: ArrayLike<number>) => Float64Array;

const shapes: Nchw[] = [
  [3, 2, 7, 11],
  [2, 1, 64, 64],
  [4, 3, 5, 8],
  [1, 1, 1, 1],
];

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Parameters that exercise each op: translations up to half the size (many pixels fall outside),
 * boxes clipped at the border, and saturation s != 1 for every C (the kernel supports any C even
 * though drawColor only uses saturation for C = 3).
 */
function testParams(op: Op, shape: Nchw, seed: number): Float32Array {
  const r = new Rng(seed);
  if (op === 'translation') return drawTranslation(r, shape, 0.5);
  if (op === 'cutout') return drawCutout(r, shape, 0.5);
  const p = new Float32Array(shape[0] * 3);
  for (let n = 0; n < shape[0]; n++) p.set([r.uniform(-0.5, 0.5), r.uniform(0, 2), r.uniform(0.5, 1.5)], 3 * n);
  return p;
}

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

describe('DiffAugment reference (float64)', () => {
  const shape: Nchw = [3, 2, 7, 11];
  for (const op of ['translation', 'cutout', 'color'] as Op[]) {
    it(`${op}: the adjoint agrees with finite differences of the forward`, () => {
      const r = rng(11);
      const x = Array.from(randArray(r, size(shape)));
      const gy = Array.from(randArray(r, size(shape)));
      const params = testParams(op, shape, 5);
      const { forward, adjoint } = reference[op];
      const num = numericalGrad((xs) => dot(forward(xs, shape, params), gy), x);
      expectClose(adjoint(gy, shape, params), num, 1e-8, `${op} adjoint`);
    });
  }

  it('contrast alone (C = 1): dx = c dy + (1 - c) mean(dy); brightness shifts every pixel by b', () => {
    const s: Nchw = [2, 1, 3, 4];
    const gy = Array.from(randArray(rng(3), 24));
    const params = [0.25, 1, 0.7, -0.4, 1, 1.3];
    const dx = colorAdjointRef(gy, s, params);
    for (let n = 0; n < 2; n++) {
      const c = params[3 * n + 2];
      const mean = gy.slice(12 * n, 12 * n + 12).reduce((a, b) => a + b, 0) / 12;
      for (let k = 0; k < 12; k++) expect(dx[12 * n + k]).toBeCloseTo(c * gy[12 * n + k] + (1 - c) * mean, 12);
    }
    const flat = new Array(24).fill(0.5);
    const y = colorRef(flat, s, params);
    for (let k = 0; k < 24; k++) expect(y[k]).toBeCloseTo(0.5 + params[3 * Math.floor(k / 12)], 12);
  });
});

describe('parameter draws', () => {
  const shape = [16, 1, 64, 64];

  it('translation: integers in [-round(ratio*size), +round(ratio*size)] per axis, varying over the batch', () => {
    const t = drawTranslation(new Rng(1), [200, 1, 7, 11], 0.25); // rW = round(2.75) = 3, rH = round(1.75) = 2
    for (let n = 0; n < 200; n++) {
      expect(Number.isInteger(t[2 * n]) && Math.abs(t[2 * n]) <= 3).toBe(true);
      expect(Number.isInteger(t[2 * n + 1]) && Math.abs(t[2 * n + 1]) <= 2).toBe(true);
    }
    // Every value of the range occurs.
    expect(new Set(Array.from(t.filter((_, i) => i % 2 === 0))).size).toBe(7);
    expect(new Set(Array.from(t.filter((_, i) => i % 2 === 1))).size).toBe(5);
    const d = drawTranslation(new Rng(2), shape); // default ratio 1/8: r = 8
    expect(Math.max(...Array.from(d).map(Math.abs))).toBeLessThanOrEqual(8);
    expect(new Set(Array.from(d)).size).toBeGreaterThan(4);
  });

  it('cutout: boxes of side round(ratio*size), centred anywhere in the image (clipped at the border)', () => {
    const b = drawCutout(new Rng(3), [300, 2, 7, 11]); // sides round(3.5) = 4 (H), round(5.5) = 6 (W)
    const starts = new Set<string>();
    for (let n = 0; n < 300; n++) {
      const [x0, y0, x1, y1] = b.slice(4 * n, 4 * n + 4);
      expect(x1 - x0).toBe(6);
      expect(y1 - y0).toBe(4);
      // DiffAugment: centre offset in [0, size + 1 - side % 2), start = offset - floor(side / 2).
      expect(x0).toBeGreaterThanOrEqual(-3);
      expect(x0).toBeLessThanOrEqual(11 - 3);
      expect(y0).toBeGreaterThanOrEqual(-2);
      expect(y0).toBeLessThanOrEqual(7 - 2);
      starts.add(`${x0},${y0}`);
    }
    expect(starts.size).toBeGreaterThan(40); // 12 * 8 = 96 possible starts
    const d = drawCutout(new Rng(3), shape);
    expect(d[2] - d[0]).toBe(32);
  });

  it('color: b in [-0.5, 0.5), c in [0.5, 1.5); saturation in [0, 2) for C = 3 and 1 otherwise', () => {
    for (const c of [1, 2, 3]) {
      const p = drawColor(new Rng(4), [50, c, 8, 8]);
      for (let n = 0; n < 50; n++) {
        const [b, s, con] = p.slice(3 * n, 3 * n + 3);
        expect(b >= -0.5 && b < 0.5).toBe(true);
        expect(con >= 0.5 && con < 1.5).toBe(true);
        if (c === 3) expect(s >= 0 && s < 2).toBe(true);
        else expect(s).toBe(1);
      }
      expect(new Set(Array.from(p.filter((_, i) => i % 3 === 0))).size).toBe(50);
    }
  });

  it('a plan: same seed, same parameters; another seed, other parameters; policy order kept', () => {
    const a = diffAugmentPlan(shape, { seed: 7 });
    const b = diffAugmentPlan(shape, { seed: 7 });
    const c = diffAugmentPlan(shape, { seed: 8 });
    expect(a.map((s) => s.op)).toEqual(['color', 'translation', 'cutout']);
    expect(b).toEqual(a);
    for (let i = 0; i < 3; i++) expect(Array.from(c[i].params)).not.toEqual(Array.from(a[i].params));
    expect(diffAugmentPlan(shape, { seed: 7, policy: ['cutout', 'translation'] }).map((s) => s.op)).toEqual(['cutout', 'translation']);
  });

  it('rejects bad seeds, ratios and policies', () => {
    expect(() => diffAugmentPlan(shape, { seed: -1 })).toThrow(RangeError);
    expect(() => diffAugmentPlan(shape, { seed: 2 ** 32 })).toThrow(RangeError);
    expect(() => diffAugmentPlan(shape, { seed: 1.5 })).toThrow(RangeError);
    expect(() => diffAugmentPlan(shape, { seed: 1, translationRatio: 2 })).toThrow(RangeError);
    expect(() => diffAugmentPlan(shape, { seed: 1, cutoutRatio: -0.1 })).toThrow(RangeError);
    expect(() => diffAugmentPlan(shape, { seed: 1, policy: ['flip' as DiffAugmentPolicy] })).toThrow(/unknown policy 'flip'/);
    expect(() => drawTranslation(new Rng(1), [4, 64, 64])).toThrow(ShapeError);
  });
});

describe('DiffAugment kernels vs the CPU reference', () => {
  for (const op of ['translation', 'cutout', 'color'] as Op[]) {
    const [fwdName, bwdName] = registryOps[op];
    describe.each(kernels.variants(fwdName))(`${op} (%s)`, (variant) => {
      const fwd = (): Kernel => kernels.get(fwdName, engine, variant);
      const bwd = (): Kernel => kernels.get(bwdName, engine);

      for (const shape of shapes) {
        it(`${JSON.stringify(shape)}: forward and backward (dy -> dx) match the reference`, async () => {
          const n = size(shape);
          const r = rng(n + shape[1]);
          const x = randArray(r, n, 2).map((v) => v + 0.3); // non-zero sample means
          const gy = randArray(r, n);
          const params = testParams(op, shape, 100 + n);
          const xt = engine.fromArray(x, shape);
          const gt = engine.fromArray(gy, shape);
          const pt = engine.fromArray(params, [shape[0], PARAMS_PER_SAMPLE[op]]);
          const y = fwd()(xt, pt);
          const dx = bwd()(gt, pt);
          expect(y.shape).toEqual(shape);
          expect(dx.shape).toEqual(shape);
          const yRef = reference[op].forward(x, shape, params);
          const dxRef = reference[op].adjoint(gy, shape, params);
          if (op === 'color') {
            expectClose(await y.toArray(), yRef, 1e-5, 'y');
            expectClose(await dx.toArray(), dxRef, 1e-5, 'dx');
          } else {
            expect(Array.from(await y.toArray()), 'y').toEqual(Array.from(Float32Array.from(yRef)));
            expect(Array.from(await dx.toArray()), 'dx').toEqual(Array.from(Float32Array.from(dxRef)));
          }
          for (const t of [xt, gt, pt, y, dx]) t.dispose();
        });
      }

      it('float32 finite differences on the GPU agree with the backward pass', async () => {
        const shape: Nchw = [3, 2, 7, 11];
        const n = size(shape);
        const r = rng(21);
        const x = randArray(r, n);
        const gy = randArray(r, n);
        const params = testParams(op, shape, 9);
        const pt = engine.fromArray(params, [shape[0], PARAMS_PER_SAMPLE[op]]);
        const loss = async (xs: ArrayLike<number>) => {
          const t = engine.fromArray(xs, shape);
          const y = fwd()(t, pt);
          const v = dot(await y.toArray(), gy);
          t.dispose();
          y.dispose();
          return v;
        };
        const dx = await bwd()(engine.fromArray(gy, shape), pt).toArray();
        const coords = [0, 5, 40, 77, 150, 231, 300, 461];
        const h = 1e-2;
        const xs = Array.from(x);
        const num: number[] = [];
        for (const i of coords) {
          const v = xs[i];
          xs[i] = v + h;
          const fp = await loss(xs);
          xs[i] = v - h;
          const fm = await loss(xs);
          xs[i] = v;
          num.push((fp - fm) / (2 * h));
        }
        expectClose(
          coords.map((i) => dx[i]),
          num,
          1e-3,
          `${op} dx vs float32 finite differences`,
        );
        pt.dispose();
      });

      it('rejects a parameter table of the wrong shape and non-NCHW input', () => {
        const x = engine.zeros([2, 1, 4, 4]);
        const k = PARAMS_PER_SAMPLE[op];
        expect(() => fwd()(x, engine.zeros([3, k]))).toThrow(ShapeError);
        expect(() => fwd()(x, engine.zeros([2, k + 1]))).toThrow(ShapeError);
        expect(() => fwd()(engine.zeros([2, 16]), engine.zeros([2, k]))).toThrow(ShapeError);
      });
    });
  }

  it('sampleMean: one mean per sample, over C, H and W', async () => {
    const shape: Nchw = [5, 3, 13, 17];
    const x = randArray(rng(5), size(shape), 3);
    const m = await sampleMean(engine.fromArray(x, shape)).toArray();
    const len = 3 * 13 * 17;
    const expected = Array.from({ length: 5 }, (_, n) => x.slice(n * len, (n + 1) * len).reduce((a, b) => a + b, 0) / len);
    expectClose(m, expected, 1e-5, 'means');
  });
});

describe('F.diffAugment and the DiffAugment ops', () => {
  const shape: Nchw = [3, 2, 7, 11];

  /** The reference composition of a plan and its adjoint, in float64. */
  function referencePlan(x: ArrayLike<number>, gy: ArrayLike<number>, s: Nchw, seed: number, policy?: DiffAugmentPolicy[]) {
    const plan = diffAugmentPlan(s, { seed, policy });
    let y: ArrayLike<number> = x;
    for (const { op, params } of plan) y = reference[op].forward(y, s, params);
    let g: ArrayLike<number> = gy;
    for (const { op, params } of [...plan].reverse()) g = reference[op].adjoint(g, s, params);
    return { y: y as Float64Array, dx: g as Float64Array };
  }

  it('forward and the gradient reaching an upstream parameter match the reference (a generator output through tanh)', async () => {
    const n = size(shape);
    const r = rng(31);
    const w = randArray(r, n);
    const gy = randArray(r, n);
    const wt = engine.tensor(w, shape, { requiresGrad: true });
    const x = F.tanh(wt);
    const y = F.diffAugment(x, { seed: 1234 });
    F.sum(F.mul(y, engine.tensor(gy, shape))).backward();
    const xs = Array.from(w, Math.tanh);
    const ref = referencePlan(xs, gy, shape, 1234);
    expectClose(await y.toArray(), ref.y, 1e-5, 'y');
    const dw = ref.dx.map((g, i) => g * (1 - xs[i] ** 2));
    expectClose(await wt.grad!.toArray(), dw, 1e-5, 'dw');
  });

  it('single ops: translate, cutout and adjustColor take the parameter tables directly', async () => {
    const n = size(shape);
    const r = rng(32);
    const x = randArray(r, n);
    const gy = randArray(r, n);
    for (const [op, fn] of [
      ['translation', F.translate],
      ['cutout', F.cutout],
      ['color', F.adjustColor],
    ] as const) {
      const params = testParams(op, shape, 77);
      const xt = engine.tensor(x, shape, { requiresGrad: true });
      const y = fn(xt, params);
      y.backward(engine.tensor(gy, shape));
      expectClose(await y.toArray(), reference[op].forward(x, shape, params), 1e-5, `${op} y`);
      expectClose(await xt.grad!.toArray(), reference[op].adjoint(gy, shape, params), 1e-5, `${op} dx`);
      expect(() => fn(xt, params.slice(1))).toThrow(ShapeError);
      if (op !== 'color') expect(() => fn(xt, params.map((v) => v + 0.5))).toThrow(/whole pixels/);
    }
  });

  it('same seed, same augmentation; other seeds, other augmentations', async () => {
    const x = engine.tensor(randArray(rng(33), size(shape)), shape);
    const a = await F.diffAugment(x, { seed: 5 }).toArray();
    const b = await F.diffAugment(x, { seed: 5 }).toArray();
    expect(Array.from(b)).toEqual(Array.from(a));
    for (const seed of [6, 5 + 2 ** 31]) {
      const c = await F.diffAugment(x, { seed }).toArray();
      expect(Array.from(c), `seed ${seed}`).not.toEqual(Array.from(a));
    }
    // Without a seed, each call draws a new one from the global generator.
    const d = await F.diffAugment(x).toArray();
    const e = await F.diffAugment(x).toArray();
    expect(Array.from(e)).not.toEqual(Array.from(d));
  });

  it('each sample of a batch of identical images is augmented differently', async () => {
    const s: Nchw = [8, 1, 16, 16];
    const img = randArray(rng(34), 256).map((v) => v + 0.5);
    const batch = new Float32Array(8 * 256);
    for (let n = 0; n < 8; n++) batch.set(img, n * 256);
    for (const policy of [['color'], ['translation'], ['cutout']] as DiffAugmentPolicy[][]) {
      const y = await F.diffAugment(engine.tensor(batch, s), { seed: 99, policy }).toArray();
      const samples = new Set(Array.from({ length: 8 }, (_, n) => Array.from(y.slice(n * 256, (n + 1) * 256)).join(',')));
      // Translation and cutout have few distinct values over 8 samples; colour parameters are continuous.
      expect(samples.size, policy[0]).toBeGreaterThanOrEqual(policy[0] === 'color' ? 8 : 4);
    }
  });

  it('an empty policy is the identity and still passes gradients', async () => {
    const x = engine.tensor(randArray(rng(35), size(shape)), shape, { requiresGrad: true });
    const y = F.diffAugment(x, { seed: 1, policy: [] });
    expect(Array.from(await y.toArray())).toEqual(Array.from(await x.toArray()));
    F.sum(y).backward();
    expect(Array.from(await x.grad!.toArray()).every((v) => v === 1)).toBe(true);
  });

  it('rejects input that is not NCHW', () => {
    expect(() => F.diffAugment(engine.tensor(randArray(rng(36), 12), [3, 4]) as Tensor, { seed: 1 })).toThrow(ShapeError);
  });
});
