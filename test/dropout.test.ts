import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { dropoutMask } from '../src/kernels/dropout.js';
import { kernels } from '../src/kernels/registry.js';
import { dropoutBackwardRef, dropoutMaskRef, dropoutRef, philox4x32 } from '../src/kernels/reference/dropout.js';
import { dot, expectClose, numericalGrad, randArray, rng, testEngine } from './helpers.js';
import { dropoutBackwardOp, dropoutForwardOp } from '../src/kernels/dropout.js';

// Tolerances:
//  - the mask is compared exactly (bit for bit) with the CPU Philox reference: the keep decision is an
//    integer comparison, so it must not differ on any adapter;
//  - y and dx: relative error 1e-6 (one float32 multiply by the float32-rounded 1/(1-p): <= 2 ulp);
//  - keep fraction: within 5 binomial standard deviations, sqrt(n p (1-p)), of n (1-p) on 1e5 elements
//    (a false failure has probability ~6e-7);
//  - GPU float32 finite differences: h = 1e-2, relative error 1e-3 (dropout is linear, so only the
//    rounding of the float32 sum, ~1e-6 / 2h, remains); CPU float64: h = 1e-6, relative error 1e-8.
type Fwd = (x: DeviceTensor, p: number, seed: number) => DeviceTensor;

const shapes = [[1], [5], [3, 5], [1, 1, 7, 9], [3, 3, 13, 11], [3, 5, 7, 9], [1, 5, 13, 11]];
const ps = [0.1, 0.5, 0.9];

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const hex = (v: number[]) => v.map((x) => x.toString(16).padStart(8, '0'));
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

describe('Philox-4x32-10 reference', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const ones = 0xffffffff;
    expect(hex(philox4x32([ones, ones, ones, ones], [ones, ones]))).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toEqual([
      'd16cfe09',
      '94fdcceb',
      '5001e420',
      '24126ea1',
    ]);
  });
});

describe('dropout reference', () => {
  it('backward agrees with finite differences of the forward (float64, fixed mask)', () => {
    const r = rng(4);
    const x = Array.from(randArray(r, 30));
    const dy = Array.from(randArray(r, 30));
    const mask = dropoutMaskRef(30, 0.3, 77);
    const num = numericalGrad((xs) => dot(dropoutRef(xs, mask, 0.3), dy), x);
    expectClose(dropoutBackwardRef(dy, mask, 0.3), num, 1e-8, 'dx');
  });
});

describe('dropoutMask', () => {
  it('is the CPU Philox mask bit for bit (sizes not a multiple of 4, seeds over 2^32)', async () => {
    for (const [n, p, seed] of [
      [1, 0.5, 0],
      [7, 0.5, 1],
      [1001, 0.25, 123456789],
      [4099, 0.75, 2 ** 40 + 17],
      [50_000, 0.5, 2 ** 53 - 1],
    ]) {
      const m = dropoutMask(engine, [n], p, seed);
      expect(Array.from(await m.toArray()), `n=${n} p=${p} seed=${seed}`).toEqual(Array.from(dropoutMaskRef(n, p, seed)));
      m.dispose();
    }
  });

  it('same seed, same mask; different seed, different mask', async () => {
    const shape = [3, 5, 7, 9];
    const a = await dropoutMask(engine, shape, 0.5, 42).toArray();
    const b = await dropoutMask(engine, shape, 0.5, 42).toArray();
    const c = await dropoutMask(engine, shape, 0.5, 43).toArray();
    const d = await dropoutMask(engine, shape, 0.5, 42 + 2 ** 32).toArray();
    expect(Array.from(b)).toEqual(Array.from(a));
    const n = a.length;
    for (const [other, name] of [
      [c, 'seed + 1'],
      [d, 'seed + 2^32'],
    ] as const) {
      let diff = 0;
      for (let i = 0; i < n; i++) diff += a[i] !== other[i] ? 1 : 0;
      // Independent masks differ in half the places: 945 +- 5 * 15.
      expect(Math.abs(diff - n / 2), name).toBeLessThan(5 * Math.sqrt(n / 4));
    }
  });

  for (const p of [0.05, ...ps]) {
    it(`keeps a fraction 1 - p of 1e5 elements within a binomial bound (p = ${p}), in every lane of a Philox block`, async () => {
      const n = 100_000;
      const m = await dropoutMask(engine, [n], p, 2024).toFloat32Array();
      const kept = m.reduce((a, b) => a + b, 0);
      expect(Math.abs(kept - n * (1 - p))).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
      // Each of the 4 words of a block (i % 4) and neighbouring pairs behave independently.
      for (let lane = 0; lane < 4; lane++) {
        let k = 0;
        for (let i = lane; i < n; i += 4) k += m[i];
        expect(Math.abs(k - (n / 4) * (1 - p)), `lane ${lane}`).toBeLessThan(5 * Math.sqrt((n / 4) * p * (1 - p)));
      }
      let both = 0;
      for (let i = 0; i + 1 < n; i += 2) both += m[i] * m[i + 1];
      const q = (1 - p) ** 2;
      expect(Math.abs(both - (n / 2) * q), 'pairs').toBeLessThan(5 * Math.sqrt((n / 2) * q * (1 - q)));
    });
  }
});

describe.each(kernels.variants('dropout.forward'))('dropout (%s)', (variant) => {
  const fwd = () => dropoutForwardOp.get(engine, variant);
  const bwd = () => dropoutBackwardOp.get(engine);

  for (const shape of shapes) {
    for (const p of ps) {
      it(`${JSON.stringify(shape)} p=${p}: forward and backward use the seed's mask`, async () => {
        const n = size(shape);
        const seed = 1000 + n + Math.round(p * 10);
        const r = rng(n);
        const x = randArray(r, n, 3);
        const dy = randArray(r, n);
        const xt = engine.fromArray(x, shape);
        const dyt = engine.fromArray(dy, shape);
        const y = fwd()(xt, p, seed);
        const dx = bwd()(dyt, p, seed);
        expect(y.shape).toEqual(shape);
        const mask = dropoutMaskRef(n, p, seed);
        expectClose(await y.toArray(), dropoutRef(x, mask, p), 1e-6, 'y');
        expectClose(await dx.toArray(), dropoutBackwardRef(dy, mask, p), 1e-6, 'dx');
        for (const t of [xt, dyt, y, dx]) t.dispose();
      });
    }
  }

  it('p = 0 is the identity', async () => {
    const x = randArray(rng(2), 3 * 5 * 7 * 9);
    const y = fwd()(engine.fromArray(x, [3, 5, 7, 9]), 0, 5);
    expect(Array.from(await y.toArray())).toEqual(Array.from(x));
    const dx = bwd()(engine.fromArray(x, [3, 5, 7, 9]), 0, 5);
    expect(Array.from(await dx.toArray())).toEqual(Array.from(x));
  });

  it('dropped elements are exactly 0 and kept ones are scaled by 1/(1-p), with the same positions in backward', async () => {
    const n = 4096;
    const ones = engine.full([n], 1);
    const y = await fwd()(ones, 0.2, 99).toArray();
    const dx = await bwd()(ones, 0.2, 99).toArray();
    for (let i = 0; i < n; i++) {
      expect(y[i] === 0 || y[i] === Math.fround(1 / 0.8)).toBe(true);
      expect(dx[i]).toBe(y[i]);
    }
  });

  it('float32 finite differences on the GPU agree with the backward pass', async () => {
    const shape = [2, 3, 5, 5];
    const n = size(shape);
    const r = rng(8);
    const x = randArray(r, n);
    const dy = randArray(r, n);
    const p = 0.4;
    const seed = 31;
    const loss = async (xs: ArrayLike<number>) => {
      const t = engine.fromArray(xs, shape);
      const y = fwd()(t, p, seed);
      const v = dot(await y.toArray(), dy);
      t.dispose();
      y.dispose();
      return v;
    };
    const dx = await bwd()(engine.fromArray(dy, shape), p, seed).toArray();
    const coords = [0, 3, 17, 40, 77, 101, 149];
    const h = 1e-2;
    const num: number[] = [];
    const xs = Array.from(x);
    for (const i of coords) {
      const v = xs[i];
      xs[i] = v + h;
      const fp = await loss(xs);
      xs[i] = v - h;
      const fm = await loss(xs);
      xs[i] = v;
      num.push((fp - fm) / (2 * h));
    }
    // Some coordinates are dropped (gradient 0); the rest have gradient dy / (1 - p).
    expectClose(
      coords.map((i) => dx[i]),
      num,
      1e-3,
      'dx vs float32 finite differences',
    );
  });

  it('rejects p outside [0, 1) and bad seeds', () => {
    const x = engine.zeros([4]);
    expect(() => fwd()(x, 1, 0)).toThrow(RangeError);
    expect(() => fwd()(x, -0.1, 0)).toThrow(RangeError);
    expect(() => fwd()(x, 0.5, -1)).toThrow(RangeError);
    expect(() => fwd()(x, 0.5, 1.5)).toThrow(RangeError);
  });
});
