// Greedy coreset (k-center greedy; Sener & Savarese 2018, as PatchCore uses it to shrink its memory bank:
// Roth et al., CVPR 2022, section 3.2). A random sample of a memory keeps the common surface features many
// times over and misses the rare ones, so a defect-free cell with a rare texture lands far from every memory
// vector and scores like a defect. The greedy coreset instead picks, one at a time, the candidate farthest
// from everything picked so far: the picked set covers the candidates with the smallest radius it can find
// (within a factor 2 of the optimum), at the cost of pool x size distance evaluations.
//
// Distances for the selection are measured after a random projection to a few dimensions (Johnson-
// Lindenstrauss; PatchCore does the same), which keeps the selection's cost in check; the memory stores the
// full-dimensional vectors of the picked candidates.
import { WgslNnError } from '../gpu/errors.js';
import type { Rng } from '../util/rng.js';

export interface CoresetOptions {
  /** Dimensions of the random projection the distances are measured in; at least `dim` means none. */
  projectTo?: number;
  /** The first pick (PatchCore starts from a random candidate). */
  first: number;
  /** Draws the projection's entries. */
  rng: Rng;
}

/**
 * Indices of `m` of the `points.length / dim` candidates (row-major [n, dim]) chosen by k-center greedy:
 * each pick is the candidate whose squared distance to its nearest earlier pick is largest (ties: the
 * lowest index). Once every remaining candidate coincides with a pick, the picks repeat cyclically.
 */
export function greedyCoreset(points: Float32Array, dim: number, m: number, opts: CoresetOptions): Int32Array {
  const n = points.length / dim;
  if (!Number.isInteger(n) || n < 1) throw new WgslNnError(`coreset: ${points.length} values are not a whole number of ${dim}-dimensional points`);
  if (!(Number.isInteger(m) && m >= 1)) throw new WgslNnError(`coreset: size must be a positive integer, got ${m}`);
  if (!(Number.isInteger(opts.first) && opts.first >= 0 && opts.first < n)) throw new WgslNnError(`coreset: first pick ${opts.first} is not one of ${n} candidates`);
  const { data: x, dim: d } = project(points, dim, opts.projectTo ?? dim, opts.rng);
  const nearest = new Float32Array(n).fill(Infinity);
  const picks = new Int32Array(m);
  let next = opts.first;
  let distinct = m;
  for (let j = 0; j < m; j++) {
    picks[j] = next;
    const c = next * d;
    let best = -1;
    let bestDistance = 0;
    for (let i = 0, o = 0; i < n; i++, o += d) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        const t = x[o + k] - x[c + k];
        s += t * t;
      }
      const near = s < nearest[i] ? (nearest[i] = s) : nearest[i];
      if (near > bestDistance) {
        bestDistance = near;
        best = i;
      }
    }
    if (best < 0) {
      // Every candidate coincides with a pick: nothing new is left to cover.
      distinct = j + 1;
      break;
    }
    next = best;
  }
  for (let j = distinct; j < m; j++) picks[j] = picks[j % distinct];
  return picks;
}

/** points [n, dim] times a Gaussian matrix [dim, k] / sqrt(k) (expected squared distances preserved); the points themselves when k >= dim. */
function project(points: Float32Array, dim: number, k: number, rng: Rng): { data: Float32Array; dim: number } {
  if (!(Number.isInteger(k) && k >= 1)) throw new WgslNnError(`coreset: projection dimensions must be a positive integer, got ${k}`);
  if (k >= dim) return { data: points, dim };
  const r = new Float32Array(dim * k);
  const scale = 1 / Math.sqrt(k);
  for (let i = 0; i < r.length; i++) r[i] = rng.normal() * scale;
  const n = points.length / dim;
  const out = new Float32Array(n * k);
  for (let i = 0; i < n; i++)
    for (let a = 0; a < dim; a++) {
      const v = points[i * dim + a];
      if (v === 0) continue;
      for (let b = 0; b < k; b++) out[i * k + b] += v * r[a * k + b];
    }
  return { data: out, dim: k };
}
