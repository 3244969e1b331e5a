import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import { broadcastShape, type BinaryOp } from '../src/kernels/elementwise.js';
import { kernels } from '../src/kernels/registry.js';
import { binaryRef, broadcastShapeRef, scaleRef } from '../src/kernels/reference/elementwise.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';

// Tolerance: one float32 rounding of an add/sub/mul/div of float32 inputs against float64: <= 2^-24
// relative per element, so 1e-6 of the largest |expected| holds for every element (also for reversed
// divisions by small values: each quotient is still correctly rounded).
const TOL = 1e-6;
const ops: BinaryOp[] = ['add', 'sub', 'mul', 'div'];

// [a, b] pairs: equal shapes, the required broadcasting cases, batch 1 and 3, odd sizes.
const pairs: [number[], number[]][] = [
  [[3, 5, 7, 9], [3, 5, 7, 9]],
  [[3, 1, 5], [4, 1]], // -> [3, 4, 5]
  [[3, 5, 13, 11], [1, 5, 1, 1]], // bias-like
  [[1, 3, 7, 9], [1, 3, 1, 1]],
  [[1, 1, 1, 1], [3, 5, 7, 9]], // a broadcast everywhere
  [[], [3, 5, 7]], // scalar with anything
  [[2, 3], []],
  [[], []],
  [[5, 1, 3, 1, 7, 2], [4, 1, 6, 1, 1]], // 6 dims, alternating broadcasts
  [[7, 1], [1, 9]], // outer product
  [[3, 5, 7, 9], [9]],
];

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

function nonZero(a: Float32Array): Float32Array {
  return a.map((v) => (Math.abs(v) < 0.5 ? Math.sign(v || 1) * 0.5 + v : v));
}

describe.each(kernels.variants('elementwise.binary'))('elementwise.binary (%s)', (variant) => {
  for (const [sa, sb] of pairs) {
    it(`${JSON.stringify(sa)} (op) ${JSON.stringify(sb)} matches the reference for add/sub/mul/div`, async () => {
      const r = rng(sa.length * 17 + sb.length);
      const na = sa.reduce((p, d) => p * d, 1);
      const nb = sb.reduce((p, d) => p * d, 1);
      const a = randArray(r, na, 3);
      const b = nonZero(randArray(r, nb, 2));
      const at = engine.fromArray(a, sa);
      const bt = engine.fromArray(b, sb);
      for (const op of ops) {
        const y = kernels.get('elementwise.binary', engine, variant)(at, bt, op);
        const ref = binaryRef(a, sa, b, sb, op);
        expect(y.shape).toEqual(ref.shape);
        expectClose(await y.toArray(), ref.y, TOL, `${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
        y.dispose();
        // And the other way round (a broadcast against b).
        const y2 = kernels.get('elementwise.binary', engine, variant)(bt, at, op);
        expectClose(await y2.toArray(), binaryRef(b, sb, a, sa, op).y, TOL, `${op} reversed`);
        y2.dispose();
      }
      at.dispose();
      bt.dispose();
    });
  }

  it('the result of [3,1,5] + [4,1] is [3,4,5]', () => {
    expect(broadcastShape([3, 1, 5], [4, 1])).toEqual([3, 4, 5]);
    expect(broadcastShape([], [2, 3])).toEqual([2, 3]);
    expect(broadcastShape([1, 5, 1, 1], [3, 5, 13, 11])).toEqual([3, 5, 13, 11]);
    for (const [a, b] of pairs) expect(broadcastShape(a, b)).toEqual(broadcastShapeRef(a, b));
  });

  it('[3,4] vs [5] throws a ShapeError naming both shapes', () => {
    const a = engine.fromArray(new Float32Array(12), [3, 4]);
    const b = engine.fromArray(new Float32Array(5), [5]);
    expect(() => broadcastShape([3, 4], [5])).toThrow(ShapeError);
    expect(() => kernels.get('elementwise.binary', engine, variant)(a, b, 'add')).toThrow(ShapeError);
    expect(() => kernels.get('elementwise.binary', engine, variant)(a, b, 'add')).toThrow(/\[3, 4\].*\[5\]/);
    a.dispose();
    b.dispose();
  });

  it('handles a large broadcast (bias add over [32,16,64,64])', async () => {
    const r = rng(5);
    const sa = [32, 16, 64, 64];
    const a = randArray(r, 32 * 16 * 64 * 64);
    const b = randArray(r, 16);
    const y = kernels.get('elementwise.binary', engine, variant)(engine.fromArray(a, sa), engine.fromArray(b, [1, 16, 1, 1]), 'add');
    expectClose(await y.toArray(), binaryRef(a, sa, b, [1, 16, 1, 1], 'add').y, TOL, 'bias add');
  });
});

describe('elementwise.scale and scaleByScalar', () => {
  for (const shape of [[], [1], [3, 5, 7, 9], [1, 3, 13, 11]]) {
    it(`scale ${JSON.stringify(shape)}`, async () => {
      const n = shape.reduce((p, d) => p * d, 1);
      const x = randArray(rng(n), n, 4);
      const xt = engine.fromArray(x, shape);
      for (const variant of kernels.variants('elementwise.scale')) {
        const y = kernels.get('elementwise.scale', engine, variant)(xt, -1.5, 0.25);
        expect(y.shape).toEqual(shape);
        expectClose(await y.toArray(), scaleRef(x, -1.5, 0.25), TOL, 'scale');
        const y0 = kernels.get('elementwise.scale', engine, variant)(xt, 3);
        expectClose(await y0.toArray(), scaleRef(x, 3), TOL, 'scale without beta');
      }
      const s = engine.fromArray([-0.75], []);
      for (const variant of kernels.variants('elementwise.scaleByScalar')) {
        const y = kernels.get('elementwise.scaleByScalar', engine, variant)(xt, s, 2);
        expectClose(await y.toArray(), scaleRef(x, -1.5), TOL, 'scaleByScalar alpha=2');
        const y1 = kernels.get('elementwise.scaleByScalar', engine, variant)(xt, s);
        expectClose(await y1.toArray(), scaleRef(x, -0.75), TOL, 'scaleByScalar');
      }
    });
  }

  it('scaleByScalar rejects a non-scalar', () => {
    const x = engine.fromArray([1, 2], [2]);
    expect(() => kernels.get('elementwise.scaleByScalar', engine)(x, x)).toThrow(ShapeError);
  });
});
