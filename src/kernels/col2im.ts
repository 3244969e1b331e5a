// col2im (torch.nn.functional.fold) with a fused per-channel bias and activation (shaders/col2im.wgsl):
//   out[n, c, ih, iw] = act(b[c] + sum over the taps (u, v) that reach (ih, iw) of cols[n, (c, u, v), oh, ow])
// where ih = oh*sh - ph + u, iw = ow*sw - pw + v. cols is [nimg, xc*kh*kw, yh, yw]. Not an op of the
// registry: the second half of the conv input gradient's column form (conv2d.ts), which the conv
// ops' variants run; reference: src/kernels/reference/col2im.ts.
import { f32 } from '../gpu/engine.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { ACTIVATION_CODE } from './activation.js';
import type { Epilogue } from './conv2d.js';
import type { ConvGeometry } from './matmul.js';

const WG = 64;

/**
 * Sums `cols` [nimg, xc*kh*kw, yh, yw] into `out` [nimg, xc, xh, xw] (geometry `g` of the forward conv
 * x -> y; g.yc is not used), adding `bias` [xc] and applying the epilogue's activation. Both tensors must
 * fit one storage binding (the caller takes the column form only then).
 */
export function col2im(cols: DeviceTensor, out: DeviceTensor, g: ConvGeometry, bias: DeviceTensor | null, epi: Epilogue, label: string): void {
  const taps = g.xc * g.kh * g.kw;
  const want = [g.nimg, taps, g.yh, g.yw];
  if (cols.shape.length !== 4 || cols.shape.some((d, i) => d !== want[i])) throw new ShapeError(`${label}: columns [${cols.shape}] must be [${want}]`);
  const total = g.nimg * g.xc * g.xh * g.xw;
  if (out.size !== total) throw new ShapeError(`${label}: output [${out.shape}] must hold ${total} elements`);
  if (bias && bias.size !== g.xc) throw new ShapeError(`${label}: bias [${bias.shape}] must be [${g.xc}]`);
  const e = out.engine;
  const max = e.limits.maxComputeWorkgroupsPerDimension;
  e.dispatch({
    shader: 'col2im',
    entry: 'col2im',
    constants: { KH: g.kh, KW: g.kw, SH: g.sh, SW: g.sw },
    uniforms: [g.nimg * g.xc, g.xc, g.xh, g.xw, g.yh, g.yw, g.ph, g.pw, bias ? 1 : 0, ACTIVATION_CODE[epi.activation ?? 'none'], f32(epi.slope ?? 0.01)],
    bindings: [cols, out, bias ?? cols],
    workgroups: [Math.ceil(g.xw / WG), Math.min(g.xh, max), Math.min(g.nimg * g.xc, max)],
    label: `${label} (col2im)`,
  });
}
