// CPU reference for conv2d (NCHW, OIHW weights, zero padding, dilation 1, groups 1); float64.
// The backward passes scatter along the forward's loops (each product x*w contributes to dx and dw),
// independently of the GPU kernels' gather formulations.
import { activationRef, type ActivationName } from './activation.js';

export interface ConvRefParams {
  stride: [number, number];
  padding: [number, number];
}

export function convOutSize(h: number, w: number, kh: number, kw: number, p: ConvRefParams): [number, number] {
  return [Math.floor((h + 2 * p.padding[0] - kh) / p.stride[0]) + 1, Math.floor((w + 2 * p.padding[1] - kw) / p.stride[1]) + 1];
}

/**
 * Calls f(yIndex, xIndex, wIndex) for every (output, tap) pair of the conv whose x tap lies inside
 * the input (padding taps contribute zero and are skipped).
 */
function forEachTap(
  xShape: readonly number[],
  wShape: readonly number[],
  p: ConvRefParams,
  f: (yi: number, xi: number, wi: number) => void,
): void {
  const [n, c, h, w] = xShape;
  const [o, , kh, kw] = wShape;
  const [ho, wo] = convOutSize(h, w, kh, kw, p);
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let i = 0; i < ho; i++)
        for (let j = 0; j < wo; j++) {
          const yi = ((b * o + oc) * ho + i) * wo + j;
          for (let ic = 0; ic < c; ic++)
            for (let u = 0; u < kh; u++) {
              const ih = i * p.stride[0] - p.padding[0] + u;
              if (ih < 0 || ih >= h) continue;
              for (let v = 0; v < kw; v++) {
                const iw = j * p.stride[1] - p.padding[1] + v;
                if (iw < 0 || iw >= w) continue;
                f(yi, ((b * c + ic) * h + ih) * w + iw, ((oc * c + ic) * kh + u) * kw + v);
              }
            }
        }
}

/** y = act(conv2d(x, w) + b): returns the data of y [N, O, Ho, Wo]. */
export function conv2dRef(
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
  const [o, , kh, kw] = wShape;
  const [ho, wo] = convOutSize(h, ww, kh, kw, p);
  const y = new Float64Array(n * o * ho * wo);
  if (b) for (let i = 0; i < y.length; i++) y[i] = b[Math.floor(i / (ho * wo)) % o];
  forEachTap(xShape, wShape, p, (yi, xi, wi) => {
    y[yi] += x[xi] * w[wi];
  });
  return activationRef(y, activation, slope);
}

/** dx = d(sum dy*y)/dx for y = conv2d(x, w). */
export function conv2dBackwardInputRef(
  dy: ArrayLike<number>,
  w: ArrayLike<number>,
  xShape: readonly number[],
  wShape: readonly number[],
  p: ConvRefParams,
): Float64Array {
  const dx = new Float64Array(xShape.reduce((a, b) => a * b, 1));
  forEachTap(xShape, wShape, p, (yi, xi, wi) => {
    dx[xi] += dy[yi] * w[wi];
  });
  return dx;
}

/** dw = d(sum dy*y)/dw for y = conv2d(x, w). */
export function conv2dBackwardWeightRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  xShape: readonly number[],
  wShape: readonly number[],
  p: ConvRefParams,
): Float64Array {
  const dw = new Float64Array(wShape.reduce((a, b) => a * b, 1));
  forEachTap(xShape, wShape, p, (yi, xi, wi) => {
    dw[wi] += dy[yi] * x[xi];
  });
  return dw;
}
