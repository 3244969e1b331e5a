// nearest.squaredDistance (src/kernels/nearest.ts), every registered variant against the float64
// reference (src/kernels/reference/nearest.ts), on shapes that leave partial blocks everywhere: query
// counts that are not multiples of the 16 / 64 queries of a workgroup, memories that are not multiples
// of the 64 vectors of a block, feature counts that are not multiples of 4 (the subgroup variant then
// runs as 'tiled') or of the 16 features of a tile. Outputs start as NaN (poisoned allocations).
//
// Tolerance: the kernels compute |q|^2 + |m|^2 - 2 q.m in float32, whose rounding error grows with the
// norms, not with the distance: |got - exp| <= 1e-5 * (|q_i|^2 + max_j |m_j|^2) per query (observed
// ~1e-7 of that scale).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import { nearestSquaredDistanceOp, runsSubgroup } from '../src/kernels/nearest.js';
import { nearestSquaredDistanceRef } from '../src/kernels/reference/nearest.js';
import { randArray, rng, testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const TOL = 1e-5;

function squaredNorms(x: Float32Array, C: number): number[] {
  return Array.from({ length: x.length / C }, (_, i) => x.subarray(i * C, (i + 1) * C).reduce((s, v) => s + v * v, 0));
}

async function run(variant: string, queries: Float32Array, memory: Float32Array, C: number, e = engine): Promise<Float32Array> {
  const q = e.fromArray(queries, [queries.length / C, C]);
  const m = e.fromArray(memory, [memory.length / C, C]);
  try {
    const out = nearestSquaredDistanceOp.get(e, variant)(q, m);
    try {
      return (await out.toArray()) as Float32Array;
    } finally {
      out.dispose();
    }
  } finally {
    q.dispose();
    m.dispose();
  }
}

function expectNear(got: Float32Array, queries: Float32Array, memory: Float32Array, C: number): void {
  const exp = nearestSquaredDistanceRef(queries, memory, C);
  expect(got.length).toBe(exp.length);
  const qn = squaredNorms(queries, C);
  const mMax = Math.max(...squaredNorms(memory, C));
  for (let i = 0; i < exp.length; i++) {
    const bound = TOL * (qn[i] + mMax);
    if (!(Math.abs(got[i] - exp[i]) <= bound)) throw new Error(`query ${i}: got ${got[i]}, expected ${exp[i]} (bound ${bound})`);
  }
}

const cases: [n: number, M: number, C: number][] = [
  [1, 1, 4],
  [37, 100, 64], // partial query and memory blocks
  [50, 70, 7], // C % 4 != 0: the subgroup variant runs as 'tiled'
  [130, 513, 20], // C % 16 != 0: a partial feature tile
  [17, 3, 132], // more features than vectors
  [300, 1000, 32],
];

describe.each(nearestSquaredDistanceOp.variants())('nearest.squaredDistance (%s)', (variant) => {
  it.each(cases)('n %i, M %i, C %i against the float64 reference', async (n, M, C) => {
    const queries = randArray(rng(n * 7 + C), n * C);
    const memory = randArray(rng(M * 13 + C), M * C);
    expectNear(await run(variant, queries, memory, C), queries, memory, C);
  });

  it('a query that is one of the memory vectors is at distance ~0 (never negative), others at their true distance', async () => {
    const C = 64;
    const memory = randArray(rng(5), 200 * C, 3);
    const queries = new Float32Array(40 * C);
    for (let i = 0; i < 40; i++) {
      // Even queries: memory vector 5 * i exactly; odd ones: it moved by 0.1 along one feature.
      queries.set(memory.subarray(5 * i * C, (5 * i + 1) * C), i * C);
      if (i % 2) queries[i * C + (i % C)] += 0.1;
    }
    const got = await run(variant, queries, memory, C);
    for (let i = 0; i < 40; i++) expect(got[i]).toBeGreaterThanOrEqual(0);
    expectNear(got, queries, memory, C);
    // The odd queries' nearest vector is the one they moved from: 0.1^2.
    for (let i = 1; i < 40; i += 2) expect(Math.abs(got[i] - 0.01)).toBeLessThan(2e-3);
  });

  it('no queries gives an empty result', async () => {
    expect((await run(variant, new Float32Array(0), randArray(rng(1), 8 * 4), 4)).length).toBe(0);
  });
});

describe('nearest.squaredDistance', () => {
  it('rejects mismatched features, non-2-D and empty memories with a ShapeError', () => {
    const q = engine.fromArray(randArray(rng(1), 12), [3, 4]);
    const m5 = engine.fromArray(randArray(rng(2), 10), [2, 5]);
    const m3d = engine.fromArray(randArray(rng(3), 8), [1, 2, 4]);
    const empty = engine.empty([0, 4]);
    const fn = nearestSquaredDistanceOp.get(engine);
    try {
      expect(() => fn(q, m5)).toThrow(/feature counts differ/);
      expect(() => fn(q, m3d)).toThrow(ShapeError);
      expect(() => fn(q, empty)).toThrow(/at least one vector/);
    } finally {
      [q, m5, m3d, empty].forEach((t) => t.dispose());
    }
  });

  it('the subgroup variant runs its own kernel on this adapter when it has subgroups and C % 4 == 0', () => {
    // Documents which path the tests above exercised (both, on lavapipe).
    expect(runsSubgroup(engine, 64)).toBe(engine.device.features.has('subgroups') && runsSubgroup(engine, 4));
    expect(runsSubgroup(engine, 7)).toBe(false);
  });

  it('splits queries over one storage binding into ranges (an engine with a 4 KiB binding limit)', async () => {
    const small = await (await import('../src/gpu/engine.js')).Engine.create({ poisonAllocations: true, maxBindingBytes: 4096 });
    try {
      const C = 16; // 64 bytes a query: 64 per binding, so 300 queries take 5 ranges
      const queries = randArray(rng(9), 300 * C);
      const memory = randArray(rng(10), 50 * C);
      for (const variant of nearestSquaredDistanceOp.variants()) expectNear(await run(variant, queries, memory, C, small), queries, memory, C);
    } finally {
      small.destroy();
    }
  });
});
