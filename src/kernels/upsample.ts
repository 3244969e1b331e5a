// Nearest-neighbour upsampling by an integer factor, NCHW (shaders/upsample.wgsl): the resize half of
// a resize-convolution (Upsample + Conv2d), which a generator can use instead of a strided transposed
// convolution to avoid its checkerboard patterns (Odena et al., "Deconvolution and Checkerboard
// Artifacts", Distill 2016). Forward and backward are both gathers; tensors over one storage binding
// run per range of images (src/kernels/batch-split.ts).
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { SOFTWARE_PER_INVOCATION } from './elementwise.js';
import { defineOp } from './registry.js';
import { forEachSplit } from './batch-split.js';

const WG = 64;

/** The output shape [N, C, H*s, W*s], after checking x's shape and the factor. */
function upsampleOutShape(op: string, xShape: readonly number[], scale: number): [number, number, number, number] {
  if (xShape.length !== 4) throw new ShapeError(`${op}: x must be [N, C, H, W], got ${shapeString(xShape)}`);
  if (!Number.isInteger(scale) || scale < 1) throw new ShapeError(`${op}: the scale factor must be a positive integer, got ${scale}`);
  const [n, c, h, w] = xShape;
  return [n, c, h * scale, w * scale];
}

/** y[n, c, oy, ox] = x[n, c, floor(oy / s), floor(ox / s)]. */
export type UpsampleNearest2dForwardFn = (x: DeviceTensor, scale: number) => DeviceTensor;
/** dx[n, c, iy, ix] = the sum of dy over the s x s block that (iy, ix) was copied to. */
export type UpsampleNearest2dBackwardFn = (dy: DeviceTensor, xShape: readonly number[], scale: number) => DeviceTensor;

function checkForward(x: DeviceTensor, scale: number): void {
  if (x.dtype !== 'f32') throw new ShapeError(`upsampleNearest2d.forward: x must be float32, got ${x.dtype}`);
  upsampleOutShape('upsampleNearest2d.forward', x.shape, scale);
}

function checkBackward(dy: DeviceTensor, xShape: readonly number[], scale: number): void {
  const outShape = upsampleOutShape('upsampleNearest2d.backward', xShape, scale);
  if (dy.dtype !== 'f32' || dy.shape.length !== 4 || !dy.shape.every((d, i) => d === outShape[i]))
    throw new ShapeError(`upsampleNearest2d.backward: dy ${dy.dtype} ${shapeString(dy.shape)} must be f32 ${shapeString(outShape)} for x ${shapeString(xShape)}`);
}

// The variants below assume arguments that passed the op's check.

function forwardWith(x: DeviceTensor, scale: number, v: number): DeviceTensor {
  const [n, c, h, w] = x.shape;
  const y = x.engine.empty([n, c, h * scale, w * scale]);
  dispatchPerImageRange('forward', x, y, x.shape, scale, v);
  return y;
}

function backwardWith(dy: DeviceTensor, xShape: readonly number[], scale: number, v: number): DeviceTensor {
  const dx = dy.engine.empty(xShape);
  dispatchPerImageRange('backward', dy, dx, xShape, scale, v);
  return dx;
}

/**
 * One pass of shaders/upsample.wgsl from `src` into `dst` (forward: x into y; backward: dy into dx), per range of
 * images when a tensor is over one binding; the uniforms describe the input side (x's shape) either way.
 */
function dispatchPerImageRange(entry: 'forward' | 'backward', src: DeviceTensor, dst: DeviceTensor, xShape: readonly number[], scale: number, v: number): void {
  const e = src.engine;
  const [n, c, h, w] = xShape;
  const small = c * h * w;
  const large = small * scale * scale;
  const [srcUnit, dstUnit] = entry === 'forward' ? [small, large] : [large, small];
  const label = `upsampleNearest2d.${entry} ${shapeString(xShape)} x${scale}`;
  const operands = [
    { tensor: src, name: entry === 'forward' ? 'x' : 'dy', unit: srcUnit },
    { tensor: dst, name: entry === 'forward' ? 'y' : 'dx', unit: dstUnit, output: true },
  ];
  forEachSplit(e, label, n, operands, (r, [srcs, dsts]) => {
    e.dispatch({
      shader: 'upsample',
      entry,
      constants: { V: v },
      uniforms: [r.count * c, h, w, scale],
      bindings: [srcs, dsts],
      workgroups: e.grid(Math.ceil(dsts.size / v), WG),
      label,
    });
  });
}

const V_SW = SOFTWARE_PER_INVOCATION;
export const upsampleNearest2dForwardOp = defineOp<UpsampleNearest2dForwardFn>('upsampleNearest2d.forward', { check: checkForward });
upsampleNearest2dForwardOp.register('chunked', (x: DeviceTensor, s: number) => forwardWith(x, s, V_SW), {
  description: `${V_SW} consecutive outputs per invocation`,
  preferredOn: ['software'],
});
upsampleNearest2dForwardOp.register('per-element', (x: DeviceTensor, s: number) => forwardWith(x, s, 1), {
  description: 'one output per invocation',
  preferredOn: ['hardware'],
});
export const upsampleNearest2dBackwardOp = defineOp<UpsampleNearest2dBackwardFn>('upsampleNearest2d.backward', { check: checkBackward });
upsampleNearest2dBackwardOp.register('chunked', (dy: DeviceTensor, xShape: readonly number[], s: number) => backwardWith(dy, xShape, s, V_SW), {
  description: `gather of each input element's s x s block, ${V_SW} elements per invocation`,
  preferredOn: ['software'],
});
upsampleNearest2dBackwardOp.register('per-element', (dy: DeviceTensor, xShape: readonly number[], s: number) => backwardWith(dy, xShape, s, 1), {
  description: "gather of each input element's s x s block, one per invocation",
  preferredOn: ['hardware'],
});
