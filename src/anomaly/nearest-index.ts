// An exact nearest-neighbour search over a feature memory that skips most of it: the memory's rows are
// grouped into clusters (a few k-means steps), and each block of 16 queries searches only the clusters
// that can hold the nearest row of one of its queries. The answer is the full search's, value for value
// (nearest.squaredDistance's subgroup kernel computes every distance the same way; a minimum over fewer
// rows that include every candidate is the same number). Why: the full search is the anomaly detector's
// whole scoring cost (up to 15,000 cells x 16,384 vectors x 64 features per image and memory), and a good
// tile's cells lie close to a few clusters.
//
// Why it is exact. For a query q and a cluster k with centroid c_k and radius r_k (every member within r_k
// of c_k), every member is at least LB = max(0, |q - c_k| - r_k) from q (triangle inequality). Pass 1
// searches, for each block, the clusters nearest to each of its queries, which gives every query an
// upper bound U_q of its nearest distance. A cluster with LB > U_q for every query of the block cannot
// hold any of their nearest rows, so pass 2 skips it for that block. Margins cover float32 rounding: the
// kernels compute |q|^2 + |x|^2 - 2 q.x, off by at most t (|q|^2 + |x|^2) (t = 1e-5 for up to 84 features,
// kernelTolerance). So |q - c_k| is lowered by that much, and pass 2 keeps cluster k while
// LB^2 - t (|q|^2 + N_k) <= d1_q, with d1_q the
// distance pass 1 computed for q and N_k the largest |m|^2 in the cluster: a row whose computed distance could
// be at most d1_q, and so the full search's minimum, is never skipped. (Per cluster, not the memory's largest
// norm: a coreset keeps a few far outliers, whose norms would loosen every bound.)
//
// The clusters come from k-means steps on a sample of the rows, the dot products of the assignment and of
// the queries with the centroids from the GEMM kernel (linear.forward); only the choices and bounds are
// made on the host, in float64.
//
// Used by FeatureMemory (feature-memory.ts) where the subgroup kernel runs (lavapipe, most GPUs); the
// queries come in 4 x 4 tiles of cells, so a block's queries are neighbours and R_b is small.
import type { DeviceTensor } from '../gpu/device-tensor.js';
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { linearForward } from '../kernels/dense.js';
import { nearestSquaredDistanceInRanges, RANGE_BLOCK_QUERIES, runsSubgroup } from '../kernels/nearest.js';
import { Rng } from '../util/rng.js';

/**
 * Rounding bound of the kernels' |q|^2 + |x|^2 - 2 q.x, relative to |q|^2 + |x|^2, for C features: sums of C
 * float32 products are off by at most about C * 2^-24 of their terms' magnitude each, twice that in all;
 * never below the 1e-5 that test/nearest.test.ts holds the kernel to (observed ~1e-7).
 */
const kernelTolerance = (C: number) => Math.max(1e-5, 2 * C * 2 ** -24);

export interface NearestIndexOptions {
  /** Clusters (default about 4 sqrt(rows), at most the rows: 512 for 16,384, the fastest of 256, 512 and 1,024 on the shipped memories). */
  clusters?: number;
  /** k-means steps (default 8: the clusters need not be good, only compact). */
  iterations?: number;
  /** Rows the k-means steps run on (default 8,192; the last assignment takes every row). */
  sample?: number;
  seed?: number;
}

export class NearestIndex {
  private constructor(
    readonly features: number,
    /** The memory's rows in cluster order. */
    private readonly sorted: DeviceTensor,
    /** The centroids [K, C] on the device (for the queries' dot products) and on the host. */
    private readonly centroidTensor: DeviceTensor,
    private readonly centroids: Float32Array,
    /** Largest distance of a member to its centroid, per cluster. */
    private readonly radii: Float64Array,
    /** Cluster k holds sorted rows offsets[k] .. offsets[k + 1] - 1. */
    private readonly offsets: Uint32Array,
    /** Largest |m|^2 of each cluster's rows. */
    private readonly maxNorm2: Float64Array,
  ) {}

  /** Whether the engine runs the kernel the index needs for memories of `features` features. */
  static available(engine: Engine, features: number): boolean {
    return runsSubgroup(engine, features);
  }

  /** Clusters the rows of `memory` ([M, C] row-major, on the host) and uploads them in cluster order. */
  static async build(engine: Engine, memory: Float32Array, C: number, opts: NearestIndexOptions = {}): Promise<NearestIndex> {
    const M = memory.length / C;
    if (!Number.isInteger(M) || M < 1) throw new WgslNnError(`nearest index: ${memory.length} values are not rows of ${C} features`);
    if (!NearestIndex.available(engine, C)) throw new WgslNnError(`nearest index: this device does not run the subgroup search kernel for ${C} features`);
    const K0 = Math.max(1, Math.min(M, opts.clusters ?? Math.round(4 * Math.sqrt(M))));
    const rng = new Rng(opts.seed ?? 1);
    const shuffled = rng.shuffle(Array.from({ length: M }, (_, i) => i));
    // k-means steps on a sample, starting from K0 distinct rows; then every row to its nearest centroid.
    const sampleRows = shuffled.slice(0, Math.max(K0, Math.min(M, opts.sample ?? 8192)));
    const sample = new Float32Array(sampleRows.length * C);
    sampleRows.forEach((j, i) => sample.set(memory.subarray(j * C, (j + 1) * C), i * C));
    let centroids: Float32Array = new Float32Array(K0 * C);
    for (let k = 0; k < K0; k++) centroids.set(memory.subarray(shuffled[k] * C, (shuffled[k] + 1) * C), k * C);
    const x = engine.fromArray(sample, [sampleRows.length, C]);
    try {
      for (let it = 0; it < (opts.iterations ?? 8); it++) centroids = means(sample, C, await nearestCentroids(x, centroids, C), centroids);
    } finally {
      x.dispose();
    }
    const all = engine.fromArray(memory, [M, C]);
    let assign: Int32Array;
    try {
      assign = await nearestCentroids(all, centroids, C);
    } finally {
      all.dispose();
    }
    // Drop empty clusters; order the rest along the centroids' main direction, so that clusters next to
    // each other in the sorted memory tend to be near each other (a block's ranges then merge).
    const counts = new Int32Array(K0);
    for (let j = 0; j < M; j++) counts[assign[j]]++;
    const kept = Array.from({ length: K0 }, (_, k) => k).filter((k) => counts[k] > 0);
    const axis = mainAxis(centroids, C, kept);
    const proj = (k: number) => axis.reduce((s, a, c) => s + a * centroids[k * C + c], 0);
    kept.sort((a, b) => proj(a) - proj(b));
    const K = kept.length;
    const newIndex = new Int32Array(K0).fill(-1);
    kept.forEach((k, i) => (newIndex[k] = i));
    const offsets = new Uint32Array(K + 1);
    kept.forEach((k, i) => (offsets[i + 1] = offsets[i] + counts[k]));
    const fill = offsets.slice(0, K);
    const sortedRows = new Float32Array(M * C);
    const cent = new Float32Array(K * C);
    kept.forEach((k, i) => cent.set(centroids.subarray(k * C, (k + 1) * C), i * C));
    const radii = new Float64Array(K);
    const maxNorm2 = new Float64Array(K);
    for (let j = 0; j < M; j++) {
      const k = newIndex[assign[j]];
      const row = memory.subarray(j * C, (j + 1) * C);
      sortedRows.set(row, fill[k]++ * C);
      let d = 0;
      let n2 = 0;
      for (let c = 0; c < C; c++) {
        const v = row[c] - cent[k * C + c];
        d += v * v;
        n2 += row[c] * row[c];
      }
      radii[k] = Math.max(radii[k], Math.sqrt(d));
      maxNorm2[k] = Math.max(maxNorm2[k], n2);
    }
    return new NearestIndex(C, engine.fromArray(sortedRows, [M, C]), engine.fromArray(cent, [K, C]), cent, radii, offsets, maxNorm2);
  }

  get clusters(): number {
    return this.radii.length;
  }

  /**
   * min over the memory's rows of |q_i - m|^2 for each query row of `queries` ([n, C] on the host), as
   * nearest.squaredDistance's subgroup kernel computes it; blocks of 16 consecutive queries share a plan,
   * so the search is fastest when neighbours in feature space come together. `searched`, if given,
   * receives the share of (query, row) pairs computed in the second pass.
   */
  async search(queries: Float32Array, stats?: { searched?: number }): Promise<Float32Array> {
    const C = this.features;
    const n = queries.length / C;
    if (!Number.isInteger(n)) throw new WgslNnError(`nearest index: ${queries.length} values are not rows of ${C} features`);
    if (n === 0) return new Float32Array(0);
    const K = this.clusters;
    const B = RANGE_BLOCK_QUERIES;
    const blocks = Math.ceil(n / B);
    /** One past the last query of block b. */
    const blockEnd = (b: number) => Math.min(n, b * B + B);
    const { centroids: cent, radii, offsets } = this;
    const e = this.sorted.engine;
    const tol = kernelTolerance(C);
    const q = e.fromArray(queries, [n, C]);
    try {
      // Each query's nearest cluster, from |q - c_k|^2 = |q|^2 + |c_k|^2 - 2 q.c_k.
      const dots = await dotProducts(q, this.centroidTensor);
      const c2 = rowNorms(cent, C);
      const q2 = rowNorms(queries, C);
      const nearest = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        let best = Infinity;
        for (let k = 0; k < K; k++) {
          const d2 = q2[i] + c2[k] - 2 * dots[i * K + k];
          if (d2 < best) {
            best = d2;
            nearest[i] = k;
          }
        }
      }
      // Pass 1: each block against the clusters nearest its queries: an upper bound for every query.
      const plan1 = planRanges(blocks, K, offsets, (b, k) => {
        for (let i = b * B; i < blockEnd(b); i++) if (nearest[i] === k) return true;
        return false;
      });
      const d1 = await this.run(q, plan1.ranges, plan1.blockStart);
      // Pass 2: every cluster that can hold the nearest row of one of the block's queries. The lower
      // bound of |q - c_k| (float32 rounding taken off) is computed where it is tested, not kept in an
      // [n, K] float64 table (40-60 MB per search for a tile against 512 clusters): the same arithmetic
      // and plan, in a fraction of the host memory (time per image unchanged, measured).
      const plan2 = planRanges(blocks, K, offsets, (b, k) => {
        for (let i = b * B; i < blockEnd(b); i++) {
          const d2 = q2[i] + c2[k] - 2 * dots[i * K + k];
          const toCluster = Math.sqrt(Math.max(0, d2 - tol * (q2[i] + c2[k])));
          const lb = Math.max(0, toCluster - radii[k]);
          if (lb * lb - tol * (q2[i] + this.maxNorm2[k]) <= d1[i]) return true;
        }
        return false;
      });
      if (stats) {
        let pairs = 0;
        for (let b = 0; b < blocks; b++)
          for (let r = plan2.blockStart[b]; r < plan2.blockStart[b + 1]; r++) pairs += (plan2.ranges[2 * r + 1] - plan2.ranges[2 * r]) * (blockEnd(b) - b * B);
        stats.searched = pairs / (n * offsets[K]);
      }
      return await this.run(q, plan2.ranges, plan2.blockStart);
    } finally {
      q.dispose();
    }
  }

  private async run(q: DeviceTensor, ranges: Uint32Array, blockStart: Uint32Array): Promise<Float32Array> {
    const out = nearestSquaredDistanceInRanges(q, this.sorted, ranges, blockStart);
    try {
      return (await out.toArray()) as Float32Array;
    } finally {
      out.dispose();
    }
  }

  dispose(): void {
    this.sorted.dispose();
    this.centroidTensor.dispose();
  }
}

/** Each block's row ranges: the clusters `keep(b, k)` selects, adjacent ones merged into one range. */
function planRanges(blocks: number, K: number, offsets: Uint32Array, keep: (b: number, k: number) => boolean): { ranges: Uint32Array; blockStart: Uint32Array } {
  const ranges: number[] = [];
  const blockStart = new Uint32Array(blocks + 1);
  for (let b = 0; b < blocks; b++) {
    let open = -1;
    for (let k = 0; k <= K; k++) {
      const kept = k < K && keep(b, k);
      if (kept && open < 0) open = k;
      if (!kept && open >= 0) {
        ranges.push(offsets[open], offsets[k]);
        open = -1;
      }
    }
    blockStart[b + 1] = ranges.length / 2;
  }
  return { ranges: Uint32Array.from(ranges), blockStart };
}

/** x c^T: [n, C] x [K, C] -> [n, K] (row-major), by the GEMM kernel. */
async function dotProducts(x: DeviceTensor, c: DeviceTensor): Promise<Float32Array> {
  const y = linearForward(x, c, null);
  try {
    return (await y.toArray()) as Float32Array;
  } finally {
    y.dispose();
  }
}

/** |x_i|^2 of the rows of [n, C], in float64. */
function rowNorms(x: Float32Array, C: number): Float64Array {
  const out = new Float64Array(x.length / C);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[i * C + c] ** 2;
    out[i] = s;
  }
  return out;
}

/** The centroid nearest each row of x (on the device, [n, C]); ties and rounding do not matter here. */
async function nearestCentroids(x: DeviceTensor, centroids: Float32Array, C: number): Promise<Int32Array> {
  const K = centroids.length / C;
  const ct = x.engine.fromArray(centroids, [K, C]);
  let dots: Float32Array;
  try {
    dots = await dotProducts(x, ct);
  } finally {
    ct.dispose();
  }
  const c2 = rowNorms(centroids, C);
  const n = x.shape[0];
  const assign = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    for (let k = 0; k < K; k++) {
      const d = c2[k] - 2 * dots[i * K + k];
      if (d < best) {
        best = d;
        assign[i] = k;
      }
    }
  }
  return assign;
}

/** The mean of each cluster's rows (a cluster left empty keeps its centroid). */
function means(x: Float32Array, C: number, assign: Int32Array, old: Float32Array): Float32Array {
  const K = old.length / C;
  const sum = new Float64Array(K * C);
  const count = new Int32Array(K);
  for (let j = 0; j < assign.length; j++) {
    const k = assign[j];
    count[k]++;
    for (let c = 0; c < C; c++) sum[k * C + c] += x[j * C + c];
  }
  for (let k = 0; k < K; k++) {
    if (count[k] === 0) sum.set(old.subarray(k * C, (k + 1) * C), k * C);
    else for (let c = 0; c < C; c++) sum[k * C + c] /= count[k];
  }
  return Float32Array.from(sum);
}

/** The direction of largest variance of the listed centroids (a few power iterations; unit length). */
function mainAxis(centroids: Float32Array, C: number, rows: number[]): number[] {
  const mean = new Float64Array(C);
  for (const k of rows) for (let c = 0; c < C; c++) mean[c] += centroids[k * C + c] / rows.length;
  let v = Array.from({ length: C }, (_, c) => 1 / Math.sqrt(C) + c * 1e-3);
  for (let it = 0; it < 8; it++) {
    const next = new Array<number>(C).fill(0);
    for (const k of rows) {
      let p = 0;
      for (let c = 0; c < C; c++) p += (centroids[k * C + c] - mean[c]) * v[c];
      for (let c = 0; c < C; c++) next[c] += p * (centroids[k * C + c] - mean[c]);
    }
    const norm = Math.hypot(...next);
    if (!(norm > 0)) break;
    v = next.map((x) => x / norm);
  }
  return v;
}
