// CPU reference for nearest.squaredDistance, in float64: for each query, the squared Euclidean
// distance to every memory vector, summed over (q - m)^2 directly (not through norms and dot products,
// as the kernels do), and the smallest kept.

/** sum_k (q[i,k] - m[j,k])^2. */
function squaredDistance(queries: ArrayLike<number>, i: number, memory: ArrayLike<number>, j: number, C: number): number {
  let s = 0;
  for (let k = 0; k < C; k++) {
    const d = queries[i * C + k] - memory[j * C + k];
    s += d * d;
  }
  return s;
}

/** min over j of sum_k (q[i,k] - m[j,k])^2 for queries [n, C] and memory [M, C] (row-major). */
export function nearestSquaredDistanceRef(queries: ArrayLike<number>, memory: ArrayLike<number>, C: number): Float64Array {
  const n = queries.length / C;
  const M = memory.length / C;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    for (let j = 0; j < M; j++) best = Math.min(best, squaredDistance(queries, i, memory, j, C));
    out[i] = best;
  }
  return out;
}

/**
 * The same minimum over part of the memory: query i looks only at the rows j with
 * ranges[2r] <= j < ranges[2r + 1] for blockStart[b] <= r < blockStart[b + 1], b = floor(i / blockQueries).
 */
export function nearestInRangesRef(
  queries: ArrayLike<number>,
  memory: ArrayLike<number>,
  C: number,
  ranges: ArrayLike<number>,
  blockStart: ArrayLike<number>,
  blockQueries: number,
): Float64Array {
  const n = queries.length / C;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const b = Math.floor(i / blockQueries);
    let best = Infinity;
    for (let r = blockStart[b]; r < blockStart[b + 1]; r++)
      for (let j = ranges[2 * r]; j < ranges[2 * r + 1]; j++) best = Math.min(best, squaredDistance(queries, i, memory, j, C));
    out[i] = best;
  }
  return out;
}
