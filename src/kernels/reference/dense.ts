// CPU reference for dense layers (x [N,in], w [out,in], b [out]) and the bias gradient; float64.
import { activationRef, type ActivationName } from './activation.js';

/** y[n,o] = act(b[o] + sum_i x[n,i] w[o,i]). */
export function linearForwardRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  n: number,
  inF: number,
  outF: number,
  activation: ActivationName = 'none',
  slope = 0.01,
): Float64Array {
  const y = new Float64Array(n * outF);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = s;
    }
  return activationRef(y, activation, slope);
}

/** dx[n,i] = sum_o dy[n,o] w[o,i]. */
export function linearBackwardInputRef(dy: ArrayLike<number>, w: ArrayLike<number>, n: number, inF: number, outF: number): Float64Array {
  const dx = new Float64Array(n * inF);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outF; o++) {
      const g = dy[r * outF + o];
      for (let i = 0; i < inF; i++) dx[r * inF + i] += g * w[o * inF + i];
    }
  return dx;
}

/** dw[o,i] = sum_n dy[n,o] x[n,i]. */
export function linearBackwardWeightRef(x: ArrayLike<number>, dy: ArrayLike<number>, n: number, inF: number, outF: number): Float64Array {
  const dw = new Float64Array(outF * inF);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outF; o++) {
      const g = dy[r * outF + o];
      for (let i = 0; i < inF; i++) dw[o * inF + i] += g * x[r * inF + i];
    }
  return dw;
}

/** db[c] = sum of dy over every axis except axis 1 (dy of shape [N, C, ...]). */
export function biasGradRef(dy: ArrayLike<number>, shape: readonly number[]): Float64Array {
  const [n, c] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const db = new Float64Array(c);
  for (let a = 0; a < n; a++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < inner; i++) db[ch] += dy[(a * c + ch) * inner + i];
  return db;
}
