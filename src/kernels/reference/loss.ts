// CPU reference for the mean-reduced losses and their gradients, in float64.
// Gradients are derived by hand from the loss definitions (not from the shader's formulas); `g` is
// the upstream gradient of the loss.

export function bceRef(p: ArrayLike<number>, t: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const lp = Math.max(Math.log(p[i]), -100);
    const lq = Math.max(Math.log(1 - p[i]), -100);
    s += -(t[i] * lp + (1 - t[i]) * lq);
  }
  return s / p.length;
}

/** d/dp of -(t log p + (1-t) log(1-p)) / n = (-t/p + (1-t)/(1-p)) / n, times g. */
export function bceBackwardRef(p: ArrayLike<number>, t: ArrayLike<number>, g = 1): Float64Array {
  const n = p.length;
  const dp = new Float64Array(n);
  for (let i = 0; i < n; i++) dp[i] = (g * (-t[i] / p[i] + (1 - t[i]) / (1 - p[i]))) / n;
  return dp;
}

export function bceWithLogitsRef(z: ArrayLike<number>, t: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < z.length; i++) {
    // -(t log sigmoid(z) + (1-t) log(1 - sigmoid(z))), with log sigmoid(z) = -log1p(exp(-z)) written stably.
    const logSig = z[i] >= 0 ? -Math.log1p(Math.exp(-z[i])) : z[i] - Math.log1p(Math.exp(z[i]));
    const logOneMinusSig = logSig - z[i];
    s += -(t[i] * logSig + (1 - t[i]) * logOneMinusSig);
  }
  return s / z.length;
}

export function bceWithLogitsBackwardRef(z: ArrayLike<number>, t: ArrayLike<number>, g = 1): Float64Array {
  const n = z.length;
  const dz = new Float64Array(n);
  for (let i = 0; i < n; i++) dz[i] = (g * (1 / (1 + Math.exp(-z[i])) - t[i])) / n;
  return dz;
}

/** Mean over rows of -log softmax(z_row)[label]; z is [rows, k] row-major. */
export function crossEntropyRef(z: ArrayLike<number>, labels: ArrayLike<number>, k: number): number {
  const rows = labels.length;
  let s = 0;
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, z[r * k + j]);
    let e = 0;
    for (let j = 0; j < k; j++) e += Math.exp(z[r * k + j] - m);
    s += m + Math.log(e) - z[r * k + labels[r]];
  }
  return s / rows;
}

export function crossEntropyBackwardRef(z: ArrayLike<number>, labels: ArrayLike<number>, k: number, g = 1): Float64Array {
  const rows = labels.length;
  const dz = new Float64Array(z.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, z[r * k + j]);
    let e = 0;
    for (let j = 0; j < k; j++) e += Math.exp(z[r * k + j] - m);
    for (let j = 0; j < k; j++) dz[r * k + j] = (g * (Math.exp(z[r * k + j] - m) / e - (j === labels[r] ? 1 : 0))) / rows;
  }
  return dz;
}
