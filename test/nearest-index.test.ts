// The pruned exact nearest-neighbour search (src/anomaly/nearest-index.ts) and the kernel it runs on,
// nearest.squaredDistanceInRanges (src/kernels/nearest.ts).
//
// - The ranges kernel against the float64 reference over the same ranges (src/kernels/reference/nearest.ts):
//   partial query blocks, overlapping and single-row ranges, a range ending at the memory's last row;
//   outputs start as NaN (poisoned allocations). Tolerance as test/nearest.test.ts: 1e-5 (|q|^2 + max |m|^2).
// - The index against the full search (nearest.squaredDistance, 'subgroup-vec4', the kernel the index
//   shares): equal value for value, on clustered memories with near and far queries, one cluster, more
//   clusters than rows, and queries in any order; and it searches a fraction of the memory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NearestIndex } from '../src/anomaly/nearest-index.js';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import { nearestSquaredDistanceInRanges, nearestSquaredDistanceOp, RANGE_BLOCK_QUERIES } from '../src/kernels/nearest.js';
import { nearestInRangesRef } from '../src/kernels/reference/nearest.js';
import { Rng } from '../src/util/rng.js';
import { randArray, rng, testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

async function read(t: ReturnType<typeof nearestSquaredDistanceInRanges>): Promise<Float32Array> {
  try {
    return (await t.toArray()) as Float32Array;
  } finally {
    t.dispose();
  }
}

async function fullSearch(queries: Float32Array, memory: Float32Array, C: number): Promise<Float32Array> {
  const q = engine.fromArray(queries, [queries.length / C, C]);
  const m = engine.fromArray(memory, [memory.length / C, C]);
  try {
    return await read(nearestSquaredDistanceOp.get(engine, 'subgroup-vec4')(q, m));
  } finally {
    q.dispose();
    m.dispose();
  }
}

/** M rows around `centres` Gaussian clusters (spread 0.05 around centres in [-1, 1)^C). */
function clustered(r: Rng, M: number, C: number, centres: number): Float32Array {
  const c = randArray(r, centres * C);
  const out = new Float32Array(M * C);
  for (let j = 0; j < M; j++) {
    const k = r.int(centres);
    for (let f = 0; f < C; f++) out[j * C + f] = c[k * C + f] + 0.05 * r.normal();
  }
  return out;
}

const available = () => NearestIndex.available(engine, 64);

describe('nearest.squaredDistanceInRanges', () => {
  it('each block of 16 queries takes the minimum over its own row ranges (float64 reference)', async (ctx) => {
    if (!available()) ctx.skip(); // needs the subgroup kernel (lavapipe and most GPUs have it)
    const C = 12;
    const n = 37; // 3 blocks, the last one partial
    const M = 300;
    const queries = randArray(rng(3), n * C);
    const memory = randArray(rng(4), M * C);
    // Block 0: two overlapping ranges; block 1: one row, then a range ending at the last row; block 2: all rows.
    const ranges = Uint32Array.from([0, 70, 50, 130, 7, 8, 200, 300, 0, 300]);
    const blockStart = Uint32Array.from([0, 2, 4, 5]);
    const q = engine.fromArray(queries, [n, C]);
    const m = engine.fromArray(memory, [M, C]);
    try {
      const got = await read(nearestSquaredDistanceInRanges(q, m, ranges, blockStart));
      const exp = nearestInRangesRef(queries, memory, C, ranges, blockStart, RANGE_BLOCK_QUERIES);
      const norm2 = (x: Float32Array, i: number) => x.subarray(i * C, (i + 1) * C).reduce((s, v) => s + v * v, 0);
      const mMax = Math.max(...Array.from({ length: M }, (_, j) => norm2(memory, j)));
      for (let i = 0; i < n; i++) expect(Math.abs(got[i] - exp[i])).toBeLessThanOrEqual(1e-5 * (norm2(queries, i) + mMax));
      // The ranges matter: block 1's one-row range gives a larger distance than the whole memory would.
      const all = await fullSearch(queries, memory, C);
      expect(got.slice(16, 32).some((v, k) => v > all[16 + k] * 1.5)).toBe(true);
    } finally {
      q.dispose();
      m.dispose();
    }
  });

  it('refuses plans that do not cover every block or run past the memory', (ctx) => {
    if (!available()) ctx.skip(); // needs the subgroup kernel (lavapipe and most GPUs have it)
    const q = engine.fromArray(randArray(rng(1), 20 * 4), [20, 4]);
    const m = engine.fromArray(randArray(rng(2), 10 * 4), [10, 4]);
    try {
      expect(() => nearestSquaredDistanceInRanges(q, m, Uint32Array.from([0, 10]), Uint32Array.from([0, 1]))).toThrow(/blockStart needs 3 entries/);
      expect(() => nearestSquaredDistanceInRanges(q, m, Uint32Array.from([0, 10]), Uint32Array.from([0, 1, 1]))).toThrow(/block 1 has no range/);
      expect(() => nearestSquaredDistanceInRanges(q, m, Uint32Array.from([0, 11, 0, 5]), Uint32Array.from([0, 1, 2]))).toThrow(ShapeError);
      expect(() => nearestSquaredDistanceInRanges(q, m, Uint32Array.from([4, 4, 0, 5]), Uint32Array.from([0, 1, 2]))).toThrow(/empty/);
    } finally {
      q.dispose();
      m.dispose();
    }
  });
});

describe('NearestIndex', () => {
  it('gives the full search value for value on a clustered memory, near and far queries, while searching a fraction of it', async (ctx) => {
    if (!available()) ctx.skip(); // needs the subgroup kernel (lavapipe and most GPUs have it)
    const C = 64;
    const r = rng(11);
    const memory = clustered(r, 3000, C, 40);
    // Queries: each block of 16 near one memory row (neighbours, as an image's 4 x 4 tiles of cells), and a
    // few far points among them.
    const n = 203;
    const queries = new Float32Array(n * C);
    for (let i = 0; i < n; i++) {
      if (i % 50 === 49) queries.set(randArray(r, C, 2), i * C);
      else {
        const j = (Math.floor(i / 16) * 97) % 3000;
        for (let f = 0; f < C; f++) queries[i * C + f] = memory[j * C + f] + 0.02 * r.normal();
      }
    }
    const index = await NearestIndex.build(engine, memory, C, { seed: 2 });
    try {
      expect(index.clusters).toBeGreaterThan(40);
      const stats: { searched?: number } = {};
      const got = await index.search(queries, stats);
      console.log(`clustered memory: ${index.clusters} clusters, ${(100 * stats.searched!).toFixed(1)} % of the (query, row) pairs searched`);
      expect(Array.from(got)).toEqual(Array.from(await fullSearch(queries, memory, C)));
      expect(stats.searched).toBeGreaterThan(0);
      expect(stats.searched).toBeLessThan(0.5);
    } finally {
      index.dispose();
    }
  });

  it('is exact with one cluster, with as many clusters as rows, on an unclustered memory and on shuffled queries', async (ctx) => {
    if (!available()) ctx.skip(); // needs the subgroup kernel (lavapipe and most GPUs have it)
    const C = 8;
    const memory = randArray(rng(21), 150 * C);
    const queries = randArray(rng(22), 45 * C, 1.2);
    const full = Array.from(await fullSearch(queries, memory, C));
    for (const clusters of [1, 150, 12]) {
      const index = await NearestIndex.build(engine, memory, C, { clusters, seed: clusters });
      try {
        expect(Array.from(await index.search(queries))).toEqual(full);
      } finally {
        index.dispose();
      }
    }
    const index = await NearestIndex.build(engine, memory, C);
    expect(await index.search(new Float32Array(0))).toHaveLength(0);
    index.dispose();
  });
});
