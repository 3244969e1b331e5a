// CPU reference for softmax over the last dimension, in float64.

export function softmaxRef(x: ArrayLike<number>, k: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += k) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, x[base + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(x[base + j] - m);
    for (let j = 0; j < k; j++) y[base + j] = Math.exp(x[base + j] - m) / s;
  }
  return y;
}

/** dx from x and dy via the Jacobian dy_i/dx_j = y_i (delta_ij - y_j), written as an explicit double loop. */
export function softmaxBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>, k: number): Float64Array {
  const y = softmaxRef(x, k);
  const dx = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += k) {
    for (let j = 0; j < k; j++) {
      let g = 0;
      for (let i = 0; i < k; i++) g += dy[base + i] * y[base + i] * ((i === j ? 1 : 0) - y[base + j]);
      dx[base + j] = g;
    }
  }
  return dx;
}
