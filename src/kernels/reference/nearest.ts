// CPU reference for nearest.squaredDistance, in float64: for each query, the squared Euclidean
// distance to every memory vector, summed over (q - m)^2 directly (not through norms and dot products,
// as the kernels do), and the smallest kept.

/** min over j of sum_k (q[i,k] - m[j,k])^2 for queries [n, C] and memory [M, C] (row-major). */
export function nearestSquaredDistanceRef(queries: ArrayLike<number>, memory: ArrayLike<number>, C: number): Float64Array {
  const n = queries.length / C;
  const M = memory.length / C;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    for (let j = 0; j < M; j++) {
      let s = 0;
      for (let k = 0; k < C; k++) {
        const d = queries[i * C + k] - memory[j * C + k];
        s += d * d;
      }
      if (s < best) best = s;
    }
    out[i] = best;
  }
  return out;
}
