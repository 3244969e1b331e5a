// 2-D transposed convolution (NCHW; weights [Cin, Cout, kH, kW] as in PyTorch; output_padding 0):
//   y[n,o, i*s-p+u, j*s-p+v] += x[n,c,i,j] * w[c,o,u,v],  Ho = (H-1)*s - 2p + k
//
// No kernel of its own: with w read as an OIHW conv weight (O = Cin, I = Cout), the forward is the
// conv2d input gradient (d/dx GEMM per stride phase, with fused bias and activation), the input
// gradient is a conv2d forward, and the weight gradient is the conv2d weight gradient with the roles
// of x and dy exchanged.
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import {
  conv2dOutputSize,
  convBackwardInputGemm,
  convBackwardWeightGemm,
  convBucket,
  convGeometry,
  type Conv2dParams,
  type Epilogue,
} from './conv2d.js';
import { CORE_INFO, checkF32, coreOf, type GemmCore } from './matmul.js';
import { kernels } from './registry.js';

const str = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Output size (H-1)*s - 2p + k per axis. */
export function convTranspose2dOutputSize(h: number, w: number, k: [number, number], p: Conv2dParams): [number, number] {
  return [(h - 1) * p.stride[0] - 2 * p.padding[0] + k[0], (w - 1) * p.stride[1] - 2 * p.padding[1] + k[1]];
}

/** Checks x [N,Cin,H,W] and w [Cin,Cout,kH,kW]; returns the output shape [N,Cout,Ho,Wo]. */
function outputShape(op: string, xShape: readonly number[], wShape: readonly number[], p: Conv2dParams): number[] {
  const what = `${op}: x ${str(xShape)}, w ${str(wShape)}, stride ${str(p?.stride ?? [])}, padding ${str(p?.padding ?? [])}`;
  if (xShape.length !== 4 || wShape.length !== 4) throw new ShapeError(`${what}: x must be [N,Cin,H,W] and w [Cin,Cout,kH,kW]`);
  if (xShape[1] !== wShape[0]) throw new ShapeError(`${what}: x has ${xShape[1]} channels, w expects ${wShape[0]}`);
  const [ho, wo] = convTranspose2dOutputSize(xShape[2], xShape[3], [wShape[2], wShape[3]], p);
  if (!(ho >= 1 && wo >= 1)) throw new ShapeError(`${what}: output would be ${ho}x${wo}`);
  return [xShape[0], wShape[1], ho, wo];
}

function forwardWith(variant: string) {
  return (x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, p: Conv2dParams & Epilogue): DeviceTensor => {
    const op = 'convTranspose2d.forward';
    checkF32(op, x, w, b);
    const yShape = outputShape(op, x.shape, w.shape, p);
    if (b && (b.shape.length !== 1 || b.shape[0] !== yShape[1]))
      throw new ShapeError(`${op}: bias ${str(b.shape)} must be [${yShape[1]}]`);
    // The conv whose input gradient this is: its input has the shape of y, its output that of x.
    const g = convGeometry(op, yShape, w.shape, p, x.shape);
    const label = `${op} x ${str(x.shape)} w ${str(w.shape)} s${str(p.stride)} p${str(p.padding)}`;
    return convBackwardInputGemm(coreOf(variant), x, w, g, b, p, label);
  };
}

function backwardInputWith(variant: string) {
  return (dy: DeviceTensor, w: DeviceTensor, xShape: readonly number[], p: Conv2dParams): DeviceTensor => {
    const op = 'convTranspose2d.backwardInput';
    checkF32(op, dy, w);
    const yShape = outputShape(op, xShape, w.shape, p);
    if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== yShape[i]))
      throw new ShapeError(`${op}: dy ${str(dy.shape)} must be ${str(yShape)} for x ${str(xShape)} and w ${str(w.shape)}`);
    // dx = conv2d(dy, w as OIHW): the registry's conv2d.forward variant of the same name does it.
    const [h, ww] = conv2dOutputSize(yShape[2], yShape[3], [w.shape[2], w.shape[3]], p);
    if (h !== xShape[2] || ww !== xShape[3]) throw new ShapeError(`${op}: internal size mismatch`);
    return kernels.get('conv2d.forward', dy.engine, variant)(dy, w, null, p);
  };
}

function backwardWeightWith(variant: string) {
  return (x: DeviceTensor, dy: DeviceTensor, wShape: readonly number[], p: Conv2dParams): DeviceTensor => {
    const op = 'convTranspose2d.backwardWeight';
    checkF32(op, x, dy);
    const yShape = outputShape(op, x.shape, wShape, p);
    if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== yShape[i]))
      throw new ShapeError(`${op}: dy ${str(dy.shape)} must be ${str(yShape)} for x ${str(x.shape)} and w ${str(wShape)}`);
    // dw[c,o,u,v] = sum x[n,c,i,j] dy[n,o,i*s-p+u,j*s-p+v]: the conv2d weight gradient of the conv
    // from dy (input) to x (output) with OIHW weight [Cin, Cout, kH, kW].
    const g = convGeometry(op, dy.shape, wShape, p, x.shape);
    const label = `${op} x ${str(x.shape)} dy ${str(dy.shape)} s${str(p.stride)} p${str(p.padding)}`;
    return convBackwardWeightGemm(coreOf(variant), dy, x, g, label);
  };
}

type ForwardFn = ReturnType<typeof forwardWith>;
type BackwardInputFn = ReturnType<typeof backwardInputWith>;
type BackwardWeightFn = ReturnType<typeof backwardWeightWith>;

/** y = act(convTranspose2d(x, w) + b): x [N,Cin,H,W], w [Cin,Cout,kH,kW], b [Cout] -> [N,Cout,Ho,Wo]. */
export function convTranspose2dForward(x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, p: Conv2dParams & Epilogue): DeviceTensor {
  return kernels.get<ForwardFn>('convTranspose2d.forward', x.engine)(x, w, b, p);
}

/** dx (shape xShape = [N,Cin,H,W]) from dy [N,Cout,Ho,Wo] and w [Cin,Cout,kH,kW]. */
export function convTranspose2dBackwardInput(dy: DeviceTensor, w: DeviceTensor, xShape: readonly number[], p: Conv2dParams): DeviceTensor {
  return kernels.get<BackwardInputFn>('convTranspose2d.backwardInput', dy.engine)(dy, w, xShape, p);
}

/** dw (shape wShape = [Cin,Cout,kH,kW]) from x [N,Cin,H,W] and dy [N,Cout,Ho,Wo]. */
export function convTranspose2dBackwardWeight(x: DeviceTensor, dy: DeviceTensor, wShape: readonly number[], p: Conv2dParams): DeviceTensor {
  return kernels.get<BackwardWeightFn>('convTranspose2d.backwardWeight', x.engine)(x, dy, wShape, p);
}

const info = (core: GemmCore, what: string) => ({
  description: `${what}; ${CORE_INFO[core].description}`,
  preferredOn: CORE_INFO[core].preferredOn,
});
for (const [name, core] of [['gemm', 'register'], ['gemm-subgroup', 'subgroup'], ['gemm-subgroup-vec4', 'subgroup-vec4'], ['gemm-tiled', 'tiled']] as const) {
  kernels.register('convTranspose2d.forward', name, forwardWith(name), info(core, 'conv2d input-gradient GEMM per stride phase, fused bias and activation'));
  kernels.register('convTranspose2d.backwardInput', name, backwardInputWith(name), info(core, 'a conv2d forward (implicit GEMM)'));
  kernels.register('convTranspose2d.backwardWeight', name, backwardWeightWith(name), info(core, 'the conv2d weight-gradient GEMM with x and dy exchanged'));
}
kernels.register('convTranspose2d.backwardInput', 'direct', backwardInputWith('direct'), {
  description: 'a conv2d forward (direct kernel)',
});

// Shape buckets for tuned choices (w is [Cin, Cout, kh, kw]; xShape the forward input).
type Shape = readonly number[];
const iohw = (xShape: Shape, w: Shape, p: Conv2dParams) => convBucket(xShape, w[0], w[1], w[2], w[3], p);
kernels.setBucket('convTranspose2d.forward', (x: DeviceTensor, w: DeviceTensor, _b: unknown, p: Conv2dParams) => iohw(x.shape, w.shape, p));
kernels.setBucket('convTranspose2d.backwardInput', (_dy: DeviceTensor, w: DeviceTensor, xShape: Shape, p: Conv2dParams) => iohw(xShape, w.shape, p));
kernels.setBucket('convTranspose2d.backwardWeight', (x: DeviceTensor, _dy: DeviceTensor, wShape: Shape, p: Conv2dParams) => iohw(x.shape, wShape, p));
