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
  convForwardDirect,
  convForwardGemm,
  convGeometry,
  geometryOf,
  type BackwardParams,
  type Conv2dParams,
  type Epilogue,
} from './conv2d.js';
import { applyGate, checkGate } from './activation.js';
import { CONV_GEMM_VARIANT_NAMES, CORE_INFO, checkF32, registerPerCore, type GemmCore } from './matmul.js';
import { defineOp } from './registry.js';

const str = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Output size (H-1)*s - 2p + k per axis. */
export function convTranspose2dOutputSize(h: number, w: number, k: [number, number], p: Conv2dParams): [number, number] {
  return [(h - 1) * p.stride[0] - 2 * p.padding[0] + k[0], (w - 1) * p.stride[1] - 2 * p.padding[1] + k[1]];
}

/** Checks x [N,Cin,H,W] and w [Cin,Cout,kH,kW]; returns the output shape [N,Cout,Ho,Wo]. */
function outputShape(op: string, xShape: readonly number[], wShape: readonly number[], p: Conv2dParams): number[] {
  const what = `${op}: x ${str(xShape)}, w ${str(wShape)}, stride ${str(p?.stride ?? [])}, padding ${str(p?.padding ?? [])}`;
  if (xShape.length !== 4 || wShape.length !== 4) throw new ShapeError(`${what}: x and w must be 4-D, x [N,Cin,H,W] and w [Cin,Cout,kH,kW]`);
  if (xShape[1] !== wShape[0]) throw new ShapeError(`${what}: x has ${xShape[1]} channels but weight ${str(wShape)} expects ${wShape[0]}`);
  const [ho, wo] = convTranspose2dOutputSize(xShape[2], xShape[3], [wShape[2], wShape[3]], p);
  if (!(ho >= 1 && wo >= 1)) throw new ShapeError(`${what}: output would be ${ho}x${wo}`);
  return [xShape[0], wShape[1], ho, wo];
}

/** y = act(convTranspose2d(x, w) + b): x [N,Cin,H,W], w [Cin,Cout,kH,kW], b [Cout] -> [N,Cout,Ho,Wo]. */
export type ConvTranspose2dForwardFn = (x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, p: Conv2dParams & Epilogue) => DeviceTensor;
/** dx (shape xShape = [N,Cin,H,W]) from dy [N,Cout,Ho,Wo] and w [Cin,Cout,kH,kW]. */
export type ConvTranspose2dBackwardInputFn = (dy: DeviceTensor, w: DeviceTensor, xShape: readonly number[], p: BackwardParams) => DeviceTensor;
/** dw (shape wShape = [Cin,Cout,kH,kW]) from x [N,Cin,H,W] and dy [N,Cout,Ho,Wo]. */
export type ConvTranspose2dBackwardWeightFn = (x: DeviceTensor, dy: DeviceTensor, wShape: readonly number[], p: BackwardParams) => DeviceTensor;

/** Checks dy against the output shape of x and w. */
function checkDy(op: string, dy: DeviceTensor, xShape: readonly number[], wShape: readonly number[], p: Conv2dParams): number[] {
  const yShape = outputShape(op, xShape, wShape, p);
  if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== yShape[i]))
    throw new ShapeError(`${op}: dy ${str(dy.shape)} must be ${str(yShape)} for x ${str(xShape)} and w ${str(wShape)}`);
  return yShape;
}

const label = (op: string, a: string, at: DeviceTensor, b: string, bt: DeviceTensor, p: Conv2dParams) =>
  `${op} ${a} ${str(at.shape)} ${b} ${str(bt.shape)} s${str(p.stride)} p${str(p.padding)}`;

// Shape buckets for tuned choices (w is [Cin, Cout, kh, kw]; xShape the forward input).
type Shape = readonly number[];
const iohw = (xShape: Shape, w: Shape, p: Conv2dParams) => convBucket(xShape, w[0], w[1], w[2], w[3], p);

export const convTranspose2dForwardOp = defineOp<ConvTranspose2dForwardFn>('convTranspose2d.forward', {
  check: (x, w, b, p) => {
    const op = 'convTranspose2d.forward';
    checkF32(op, x, w, b);
    const yShape = outputShape(op, x.shape, w.shape, p);
    if (b && (b.shape.length !== 1 || b.shape[0] !== yShape[1]))
      throw new ShapeError(`${op}: bias ${str(b.shape)} must be [${yShape[1]}]`);
    // The conv whose input gradient this is: its input has the shape of y, its output that of x.
    convGeometry(op, yShape, w.shape, p, x.shape);
  },
  bucket: (x, w, _b, p) => iohw(x.shape, w.shape, p),
});

export const convTranspose2dBackwardInputOp = defineOp<ConvTranspose2dBackwardInputFn>('convTranspose2d.backwardInput', {
  check: (dy, w, xShape, p) => {
    const op = 'convTranspose2d.backwardInput';
    checkF32(op, dy, w);
    checkGate(op, dy, p.gate);
    const yShape = checkDy(op, dy, xShape, w.shape, p);
    const [h, ww] = conv2dOutputSize(yShape[2], yShape[3], [w.shape[2], w.shape[3]], p);
    if (h !== xShape[2] || ww !== xShape[3]) throw new ShapeError(`${op}: internal size mismatch`);
  },
  bucket: (_dy, w, xShape, p) => iohw(xShape, w.shape, p),
});

export const convTranspose2dBackwardWeightOp = defineOp<ConvTranspose2dBackwardWeightFn>('convTranspose2d.backwardWeight', {
  check: (x, dy, wShape, p) => {
    const op = 'convTranspose2d.backwardWeight';
    checkF32(op, x, dy);
    checkGate(op, dy, p.gate);
    checkDy(op, dy, x.shape, wShape, p);
    convGeometry(op, dy.shape, wShape, p, x.shape);
  },
  bucket: (x, _dy, wShape, p) => iohw(x.shape, wShape, p),
});

/** y = act(convTranspose2d(x, w) + b): x [N,Cin,H,W], w [Cin,Cout,kH,kW], b [Cout] -> [N,Cout,Ho,Wo]. */
export function convTranspose2dForward(x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, p: Conv2dParams & Epilogue): DeviceTensor {
  return convTranspose2dForwardOp.get(x.engine)(x, w, b, p);
}

/** dx (shape xShape = [N,Cin,H,W]) from dy [N,Cout,Ho,Wo] and w [Cin,Cout,kH,kW]. */
export function convTranspose2dBackwardInput(dy: DeviceTensor, w: DeviceTensor, xShape: readonly number[], p: BackwardParams): DeviceTensor {
  return convTranspose2dBackwardInputOp.get(dy.engine)(dy, w, xShape, p);
}

/** dw (shape wShape = [Cin,Cout,kH,kW]) from x [N,Cin,H,W] and dy [N,Cout,Ho,Wo]. */
export function convTranspose2dBackwardWeight(x: DeviceTensor, dy: DeviceTensor, wShape: readonly number[], p: BackwardParams): DeviceTensor {
  return convTranspose2dBackwardWeightOp.get(x.engine)(x, dy, wShape, p);
}

// The variants assume arguments that passed their op's check (the registry runs it first).
const info = (core: GemmCore, what: string) => ({
  description: `${what}; ${CORE_INFO[core].description}`,
  preferredOn: CORE_INFO[core].preferredOn,
});
registerPerCore(
  convTranspose2dForwardOp,
  CONV_GEMM_VARIANT_NAMES,
  (core) => (x, w, b, p) => {
    // The conv whose input gradient this is: its input has the shape of y, its output that of x.
    const g = geometryOf(outputShape('convTranspose2d.forward', x.shape, w.shape, p), w.shape, p);
    return convBackwardInputGemm(core, x, w, g, b, p, label('convTranspose2d.forward', 'x', x, 'w', w, p));
  },
  (core) => info(core, 'conv2d input-gradient GEMM per stride phase, fused bias and activation'),
);
// dx = conv2d(dy, w as OIHW).
registerPerCore(
  convTranspose2dBackwardInputOp,
  CONV_GEMM_VARIANT_NAMES,
  (core) => (dy, w, _xShape, p) =>
    convForwardGemm(core, dy, w, null, geometryOf(dy.shape, w.shape, p), {}, label('convTranspose2d.backwardInput', 'dy', dy, 'w', w, p), p.gate),
  (core) => info(core, 'a conv2d forward (implicit GEMM)'),
);
convTranspose2dBackwardInputOp.register(
  'direct',
  (dy, w, _xShape, p) => {
    // The direct kernel has no gated reader: an activation gate runs as its own pass first.
    const dz = p.gate ? applyGate(dy, p.gate) : dy;
    const dx = convForwardDirect(dz, w, null, geometryOf(dy.shape, w.shape, p), {}, label('convTranspose2d.backwardInput', 'dy', dy, 'w', w, p));
    if (dz !== dy) dz.dispose();
    return dx;
  },
  { description: 'a conv2d forward (direct kernel; an activation gate runs as a separate pass)' },
);
// dw[c,o,u,v] = sum x[n,c,i,j] dy[n,o,i*s-p+u,j*s-p+v]: the conv2d weight gradient of the conv from
// dy (input) to x (output) with OIHW weight [Cin, Cout, kH, kW].
registerPerCore(
  convTranspose2dBackwardWeightOp,
  CONV_GEMM_VARIANT_NAMES,
  (core) => (x, dy, wShape, p) =>
    convBackwardWeightGemm(core, dy, x, geometryOf(dy.shape, wShape, p), label('convTranspose2d.backwardWeight', 'x', x, 'dy', dy, p), p.gate && { of: 'x', gate: p.gate }),
  (core) => info(core, 'the conv2d weight-gradient GEMM with x and dy exchanged'),
);
