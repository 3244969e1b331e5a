// The greedy coreset (src/anomaly/coreset.ts) against a float64 brute-force k-center greedy written from its
// definition (all pairwise distances, then repeatedly the point farthest from its nearest pick), on points
// with a dense cluster and a few far outliers, where a random sample of the same size misses the outliers.
// Exact index equality: the distances of these random points differ far beyond float32 rounding, so the
// float32 selection and the float64 reference make the same choices.
import { describe, expect, it } from 'vitest';
import { greedyCoreset } from '../src/anomaly/coreset.js';
import { Rng } from '../src/util/rng.js';

/** n points in `dim` dimensions: most in a tight cluster, `outliers` of them far away in random directions. */
function clustered(n: number, dim: number, outliers: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const p = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) p[i * dim + k] = r.normal() * (i < outliers ? 6 : 0.3);
  return p;
}

function kCenterRef(p: Float32Array, dim: number, m: number, first: number): number[] {
  const n = p.length / dim;
  const dist = (a: number, b: number) => {
    let s = 0;
    for (let k = 0; k < dim; k++) s += (p[a * dim + k] - p[b * dim + k]) ** 2;
    return s;
  };
  const picks = [first];
  while (picks.length < m) {
    let best = -1;
    let bestD = -1;
    for (let i = 0; i < n; i++) {
      const d = Math.min(...picks.map((j) => dist(i, j)));
      if (d > bestD) [best, bestD] = [i, d];
    }
    picks.push(best);
  }
  return picks;
}

/** The largest distance of any point to its nearest pick (the covering radius). */
function radius(p: Float32Array, dim: number, picks: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < p.length / dim; i++) {
    let near = Infinity;
    for (let j = 0; j < picks.length; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += (p[i * dim + k] - p[picks[j] * dim + k]) ** 2;
      near = Math.min(near, s);
    }
    worst = Math.max(worst, near);
  }
  return Math.sqrt(worst);
}

describe('greedy coreset (k-center greedy)', () => {
  it('picks what the float64 brute-force reference picks (7 dimensions, 301 points, 23 picks)', () => {
    const p = clustered(301, 7, 5, 1);
    const got = greedyCoreset(p, 7, 23, { first: 17, rng: new Rng(2) });
    expect(Array.from(got)).toEqual(kCenterRef(p, 7, 23, 17));
    expect(new Set(got).size).toBe(23);
  });

  it('covers the outliers that a random sample of the same size misses (with and without the projection)', () => {
    const dim = 32;
    const p = clustered(2000, dim, 6, 3);
    const r = new Rng(4);
    const random = r.shuffle(Array.from({ length: 2000 }, (_, i) => i)).slice(0, 40);
    for (const projectTo of [dim, 8]) {
      const picks = greedyCoreset(p, dim, 40, { first: 1000, rng: new Rng(5), projectTo });
      for (let o = 0; o < 6; o++) expect(Array.from(picks), `outlier ${o}, projection ${projectTo}`).toContain(o);
      expect(radius(p, dim, picks)).toBeLessThan(0.6 * radius(p, dim, random));
    }
  });

  it('repeats its picks cyclically once nothing new is left, and refuses bad arguments', () => {
    // Three distinct points, each repeated: five picks are the three, then the first two again.
    const base = [0, 0, 1, 0, 0, 5];
    const p = Float32Array.from([...base, ...base, ...base]);
    const picks = Array.from(greedyCoreset(p, 2, 5, { first: 0, rng: new Rng(1) }));
    expect(picks.slice(0, 3).map((i) => i % 3).sort()).toEqual([0, 1, 2]);
    expect(picks.slice(3)).toEqual(picks.slice(0, 2));
    expect(() => greedyCoreset(p, 4, 2, { first: 0, rng: new Rng(1) })).toThrow(/whole number of 4-dimensional points/);
    expect(() => greedyCoreset(p, 2, 0, { first: 0, rng: new Rng(1) })).toThrow(/size must be a positive integer/);
    expect(() => greedyCoreset(p, 2, 2, { first: 9, rng: new Rng(1) })).toThrow(/first pick 9 is not one of 9 candidates/);
  });
});
