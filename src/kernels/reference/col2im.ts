// CPU reference for col2im (torch.nn.functional.fold) with bias and activation; float64.
// Written from the scatter definition: column (c, u, v) at output position (oh, ow) adds to
// out[n, c, oh*sh - ph + u, ow*sw - pw + v] when that lies inside the image.
import type { ConvGeometry } from '../matmul.js';
import { activationRef, type ActivationName } from './activation.js';

/** The forward conv's geometry (x [nimg, xc, xh, xw] -> columns' pixels yh x yw); its output channels do not matter here. */
export type Col2imRefGeometry = Omit<ConvGeometry, 'yc'>;

/** The data of out [nimg, xc, xh, xw] from cols [nimg, xc*kh*kw, yh, yw]. */
export function col2imRef(cols: ArrayLike<number>, g: Col2imRefGeometry, bias: ArrayLike<number> | null, activation: ActivationName = 'none', slope = 0.01): Float64Array {
  const out = new Float64Array(g.nimg * g.xc * g.xh * g.xw);
  for (let n = 0; n < g.nimg; n++)
    for (let c = 0; c < g.xc; c++)
      for (let u = 0; u < g.kh; u++)
        for (let v = 0; v < g.kw; v++)
          for (let oh = 0; oh < g.yh; oh++)
            for (let ow = 0; ow < g.yw; ow++) {
              const ih = oh * g.sh - g.ph + u;
              const iw = ow * g.sw - g.pw + v;
              if (ih < 0 || ih >= g.xh || iw < 0 || iw >= g.xw) continue;
              const col = ((n * g.xc + c) * g.kh + u) * g.kw + v;
              out[((n * g.xc + c) * g.xh + ih) * g.xw + iw] += cols[(col * g.yh + oh) * g.yw + ow];
            }
  if (bias)
    for (let i = 0; i < out.length; i++) out[i] += bias[Math.floor(i / (g.xh * g.xw)) % g.xc];
  return activationRef(out, activation, slope);
}
