// Nearest-neighbour upsampling (src/kernels/upsample.ts) against its float64 CPU reference, every
// registered variant of both directions, on NaN-poisoned engines; the autograd op against finite
// differences; tensors over one binding split per image range against the unsplit result.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import '../src/kernels/upsample.js';
import { kernels } from '../src/kernels/registry.js';
import { upsampleNearest2dBackwardRef, upsampleNearest2dRef } from '../src/kernels/reference/upsample.js';
import { F, nn } from '../src/nn/index.js';
import { dot, expectClose, randArray, rng, testEngine } from './helpers.js';

// Tolerances: the forward copies values, so it is exact; the backward sums s*s values of dy in another
// order than the float64 reference: 1e-6 relative. Finite differences: y is linear in x, so a central
// difference of sum(dy * y) is exact up to float32 rounding of the sums (h = 0.5): 1e-3 absolute.
const TOL = 1e-6;
const FD_TOL = 1e-3;

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

// Batch 1-3, channels 1-5, odd, even and 1-pixel sides, factors 1, 2, 3.
const cases: [number[], number][] = [
  [[1, 1, 1, 1], 2],
  [[2, 3, 4, 4], 2],
  [[3, 5, 7, 9], 2],
  [[1, 2, 5, 3], 3],
  [[2, 1, 13, 11], 1],
  [[1, 4, 1, 6], 2],
  [[3, 2, 8, 8], 3],
];

describe.each(kernels.variants('upsampleNearest2d.forward'))('upsampleNearest2d (%s)', (variant) => {
  const fwd = () => kernels.get('upsampleNearest2d.forward', engine, variant);
  for (const [shape, s] of cases) {
    it(`${JSON.stringify(shape)} x${s}: forward and every backward variant match the reference`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const r = rng(n * 7 + s);
      const x = randArray(r, n);
      const ref = upsampleNearest2dRef(x, shape, s);
      const y = fwd()(engine.fromArray(x, shape), s);
      expect(y.shape).toEqual(ref.shape);
      expectClose(await y.toArray(), ref.y, 0, 'y');
      const dy = randArray(r, y.size);
      const dxRef = upsampleNearest2dBackwardRef(dy, shape, s);
      for (const bv of kernels.variants('upsampleNearest2d.backward')) {
        const dx = kernels.get('upsampleNearest2d.backward', engine, bv)(engine.fromArray(dy, ref.shape), shape, s);
        expect(dx.shape).toEqual(shape);
        expectClose(await dx.toArray(), dxRef, TOL, `dx (${bv})`);
      }
    });
  }

  it('passes NaN and infinities through unchanged', async () => {
    const x = new Float32Array([NaN, Infinity, -Infinity, 2.5]);
    const got = Array.from(await fwd()(engine.fromArray(x, [1, 1, 2, 2]), 2).toArray());
    expect(got).toEqual(Array.from(upsampleNearest2dRef(x, [1, 1, 2, 2], 2).y));
    expect(got.slice(0, 4)).toEqual([NaN, NaN, Infinity, Infinity]);
  });
});

describe('upsampleNearest2d: shapes, autograd, split bindings', () => {
  it('refuses a non-4-D input, a non-integer factor and a dy of the wrong shape', () => {
    const fwd = kernels.get('upsampleNearest2d.forward', engine);
    const bwd = kernels.get('upsampleNearest2d.backward', engine);
    expect(() => fwd(engine.fromArray(new Float32Array(6), [2, 3]), 2)).toThrow(/x must be \[N, C, H, W\], got \[2, 3\]/);
    expect(() => fwd(engine.fromArray(new Float32Array(4), [1, 1, 2, 2]), 1.5)).toThrow(ShapeError);
    expect(() => fwd(engine.fromArray(new Float32Array(4), [1, 1, 2, 2]), 0)).toThrow(/positive integer, got 0/);
    expect(() => bwd(engine.fromArray(new Float32Array(16), [1, 1, 4, 4]), [1, 1, 3, 3], 2)).toThrow(/dy f32 \[1, 1, 4, 4\] must be f32 \[1, 1, 6, 6\]/);
    expect(() => new nn.Upsample(2.5)).toThrow(/positive integer, got 2.5/);
  });

  it('F.upsampleNearest2d: the taped gradient equals finite differences of the forward', async () => {
    const shape = [2, 3, 3, 4];
    const r = rng(11);
    const xv = randArray(r, 72);
    const x = engine.tensor(xv, shape, { requiresGrad: true });
    const y = new nn.Upsample(2).forward(x);
    const dyv = randArray(r, y.size);
    const loss = F.sum(F.mul(y, engine.tensor(dyv, y.shape)));
    loss.backward();
    const g = await x.grad!.toArray();
    const h = 0.5;
    for (let i = 0; i < 72; i += 5) {
      const at = async (d: number) => {
        const xs = Float32Array.from(xv);
        xs[i] += d;
        return dot(await F.upsampleNearest2d(engine.tensor(xs, shape), 2).toArray(), dyv);
      };
      expect(Math.abs(((await at(h)) - (await at(-h))) / (2 * h) - g[i]), `dx[${i}]`).toBeLessThanOrEqual(FD_TOL);
    }
  });

  it('tensors over one binding (4 KiB) run per image range and match the unsplit result', async () => {
    const split = await Engine.create({ poisonAllocations: true, maxBindingBytes: 4096, bindingOffsetAlignment: 256 });
    try {
      const shape = [5, 3, 6, 10]; // x: 720 B per image; y at x2: 2,880 B per image, over 4 KiB for 2 images
      const r = rng(5);
      const x = randArray(r, 900);
      const dy = randArray(r, 3600);
      const y = await kernels.get('upsampleNearest2d.forward', split)(split.fromArray(x, shape), 2).toArray();
      expectClose(y, upsampleNearest2dRef(x, shape, 2).y, 0, 'y');
      const dx = await kernels.get('upsampleNearest2d.backward', split)(split.fromArray(dy, [5, 3, 12, 20]), shape, 2).toArray();
      expectClose(dx, upsampleNearest2dBackwardRef(dy, shape, 2), TOL, 'dx');
    } finally {
      split.destroy();
    }
  });
});
