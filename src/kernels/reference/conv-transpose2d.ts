// CPU reference for conv-transpose2d (NCHW, weights [Cin, Cout, kH, kW], output_padding 0); float64.
// Written from the scatter definition y[n,o, i*s-p+u, j*s-p+v] += x[n,c,i,j] * w[c,o,u,v].
import { activationRef, type ActivationName } from './activation.js';
import type { ConvRefParams } from './conv2d.js';

export function convTransposeOutSize(h: number, w: number, kh: number, kw: number, p: ConvRefParams): [number, number] {
  return [(h - 1) * p.stride[0] - 2 * p.padding[0] + kh, (w - 1) * p.stride[1] - 2 * p.padding[1] + kw];
}

/** Calls f(xIndex, yIndex, wIndex) for every scatter term whose target lies inside the output. */
function forEachTerm(
  xShape: readonly number[],
  wShape: readonly number[],
  p: ConvRefParams,
  f: (xi: number, yi: number, wi: number) => void,
): void {
  const [n, ci, h, w] = xShape;
  const [, co, kh, kw] = wShape;
  const [ho, wo] = convTransposeOutSize(h, w, kh, kw, p);
  for (let b = 0; b < n; b++)
    for (let c = 0; c < ci; c++)
      for (let i = 0; i < h; i++)
        for (let j = 0; j < w; j++) {
          const xi = ((b * ci + c) * h + i) * w + j;
          for (let o = 0; o < co; o++)
            for (let u = 0; u < kh; u++) {
              const oy = i * p.stride[0] - p.padding[0] + u;
              if (oy < 0 || oy >= ho) continue;
              for (let v = 0; v < kw; v++) {
                const ox = j * p.stride[1] - p.padding[1] + v;
                if (ox < 0 || ox >= wo) continue;
                f(xi, ((b * co + o) * ho + oy) * wo + ox, ((c * co + o) * kh + u) * kw + v);
              }
            }
        }
}

/** y = act(convTranspose2d(x, w) + b): the data of y [N, Cout, Ho, Wo]. */
export function convTranspose2dRef(
  x: ArrayLike<number>,
  xShape: readonly number[],
  w: ArrayLike<number>,
  wShape: readonly number[],
  b: ArrayLike<number> | null,
  p: ConvRefParams,
  activation: ActivationName = 'none',
  slope = 0.01,
): Float64Array {
  const [n, , h, ww] = xShape;
  const [, co, kh, kw] = wShape;
  const [ho, wo] = convTransposeOutSize(h, ww, kh, kw, p);
  const y = new Float64Array(n * co * ho * wo);
  if (b) for (let i = 0; i < y.length; i++) y[i] = b[Math.floor(i / (ho * wo)) % co];
  forEachTerm(xShape, wShape, p, (xi, yi, wi) => {
    y[yi] += x[xi] * w[wi];
  });
  return activationRef(y, activation, slope);
}

/** dx = d(sum dy*y)/dx. */
export function convTranspose2dBackwardInputRef(
  dy: ArrayLike<number>,
  w: ArrayLike<number>,
  xShape: readonly number[],
  wShape: readonly number[],
  p: ConvRefParams,
): Float64Array {
  const dx = new Float64Array(xShape.reduce((a, b) => a * b, 1));
  forEachTerm(xShape, wShape, p, (xi, yi, wi) => {
    dx[xi] += dy[yi] * w[wi];
  });
  return dx;
}

/** dw = d(sum dy*y)/dw. */
export function convTranspose2dBackwardWeightRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  xShape: readonly number[],
  wShape: readonly number[],
  p: ConvRefParams,
): Float64Array {
  const dw = new Float64Array(wShape.reduce((a, b) => a * b, 1));
  forEachTerm(xShape, wShape, p, (xi, yi, wi) => {
    dw[wi] += dy[yi] * x[xi];
  });
  return dw;
}
