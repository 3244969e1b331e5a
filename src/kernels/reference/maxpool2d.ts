// CPU reference for 2-D max pooling (NCHW, floor mode, no padding), in float64.
// Tie rule: the first maximum in row-major window order wins (strict >); a NaN wins, a later NaN
// over an earlier one (PyTorch CPU: `val > max || isnan(val)`).

export interface PoolRefParams {
  kernel: [number, number];
  stride: [number, number];
}

export function maxPool2dRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  p: PoolRefParams,
): { y: Float64Array; argmax: Int32Array; shape: number[] } {
  const [n, c, h, w] = shape;
  const [kh, kw] = p.kernel;
  const [sh, sw] = p.stride;
  const ho = Math.floor((h - kh) / sh) + 1;
  const wo = Math.floor((w - kw) / sw) + 1;
  const y = new Float64Array(n * c * ho * wo);
  const argmax = new Int32Array(y.length);
  for (let plane = 0; plane < n * c; plane++) {
    for (let oh = 0; oh < ho; oh++) {
      for (let ow = 0; ow < wo; ow++) {
        let best = -Infinity;
        let bestIdx = oh * sh * w + ow * sw;
        for (let u = 0; u < kh; u++) {
          for (let v = 0; v < kw; v++) {
            const idx = (oh * sh + u) * w + (ow * sw + v);
            const val = x[plane * h * w + idx];
            if (val > best || Number.isNaN(val)) {
              best = val;
              bestIdx = idx;
            }
          }
        }
        const o = (plane * ho + oh) * wo + ow;
        y[o] = best;
        argmax[o] = bestIdx;
      }
    }
  }
  return { y, argmax, shape: [n, c, ho, wo] };
}

/** Scatter form (independent of the GPU's gather): dx[argmax of each window] += dy[window]. */
export function maxPool2dBackwardRef(x: ArrayLike<number>, shape: readonly number[], dy: ArrayLike<number>, p: PoolRefParams): Float64Array {
  const [, , h, w] = shape;
  const { argmax, shape: ys } = maxPool2dRef(x, shape, p);
  const plane = ys[2] * ys[3];
  const dx = new Float64Array(shape.reduce((a, b) => a * b, 1));
  for (let o = 0; o < argmax.length; o++) dx[Math.floor(o / plane) * h * w + argmax[o]] += dy[o];
  return dx;
}
