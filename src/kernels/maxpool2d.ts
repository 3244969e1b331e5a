// 2-D max pooling (NCHW, floor mode, no padding): forward with argmax, backward as a gather
// (shaders/maxpool2d.wgsl).
//
// Tie rule: the FIRST maximum in row-major window order wins (strict `>`, as PyTorch's CPU kernel);
// a NaN input wins (so it propagates to y).
// Tensors over one storage binding run per range of images (src/kernels/batch-split.ts).
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { perInvocation, SOFTWARE_PER_INVOCATION } from './elementwise.js';
import { defineOp } from './registry.js';
import { forEachSplit } from './batch-split.js';

export interface Pool2dParams {
  kernel: [number, number];
  stride: [number, number];
  /**
   * A ReLU folded in: y = relu(max) (= the max of the ReLU'd window), and backward, given y, gates dy
   * by y > 0 (the ReLU's backward), so a ReLU before the pool costs no pass of its own.
   */
  relu?: boolean;
}

const WG = 64;

/** Output size and validation; shared by forward and backward. */
export function pool2dOutShape(op: string, xShape: readonly number[], p: Pool2dParams): [number, number, number, number] {
  if (xShape.length !== 4) throw new ShapeError(`${op}: x must be [N, C, H, W], got ${shapeString(xShape)}`);
  const [kh, kw] = p.kernel;
  const [sh, sw] = p.stride;
  if (![kh, kw, sh, sw].every((v) => Number.isInteger(v) && v >= 1))
    throw new ShapeError(`${op}: kernel [${p.kernel}] and stride [${p.stride}] must be positive integers`);
  const [n, c, h, w] = xShape;
  if (kh > h || kw > w)
    throw new ShapeError(`${op}: kernel [${kh}, ${kw}] is larger than the input ${shapeString(xShape)} (no padding)`);
  return [n, c, Math.floor((h - kh) / sh) + 1, Math.floor((w - kw) / sw) + 1];
}

function uniforms(xShape: readonly number[], yShape: readonly number[], p: Pool2dParams): number[] {
  const [n, c, h, w] = xShape;
  return [n * c, h, w, yShape[2], yShape[3], p.kernel[0], p.kernel[1], p.stride[0], p.stride[1]];
}

/** y = max over each window; argmax (i32, y's shape) = flat index h*W + w of the chosen element in its plane. */
export function maxPool2dForward(x: DeviceTensor, p: Pool2dParams): { y: DeviceTensor; argmax: DeviceTensor } {
  return forwardWith(x, p, perInvocation(x.engine));
}

function forwardWith(x: DeviceTensor, p: Pool2dParams, v: number): { y: DeviceTensor; argmax: DeviceTensor } {
  if (x.dtype !== 'f32') throw new ShapeError(`maxPool2d.forward: x must be float32, got ${x.dtype}`);
  const outShape = pool2dOutShape('maxPool2d.forward', x.shape, p);
  const e = x.engine;
  const y = e.empty(outShape);
  const argmax = e.empty(outShape, 'i32');
  const label = `maxPool2d.forward ${shapeString(x.shape)} k${p.kernel} s${p.stride}${p.relu ? ' +relu' : ''}`;
  const [n, c, h, w] = x.shape;
  const yUnit = c * outShape[2] * outShape[3];
  const operands = [
    { tensor: x, name: 'x', unit: c * h * w },
    { tensor: y, name: 'y', unit: yUnit, output: true },
    { tensor: argmax, name: 'argmax', unit: yUnit, output: true },
  ];
  forEachSplit(e, label, n, operands, (r, [xs, ys, ams]) => {
    e.dispatch({
      shader: 'maxpool2d',
      // forward_pairs reads each window row as one aligned vec2 of x (a batch range's binding starts at a
      // multiple of 256 bytes, so at an even element).
      entry: p.kernel[1] === 2 && p.stride[1] === 2 && w % 2 === 0 ? 'forward_pairs' : 'forward',
      constants: { V: v, RELU: !!p.relu },
      uniforms: uniforms(xs.shape, ys.shape, p),
      bindings: [xs, ys, ams],
      workgroups: e.grid(Math.ceil(ys.size / v), WG),
      label,
    });
  });
  return { y, argmax };
}

/**
 * dx[i] = sum of dy over every window whose argmax is i; uncovered positions 0. With p.relu, y (the
 * forward's output) gates each window's dy by y > 0.
 */
export function maxPool2dBackward(
  dy: DeviceTensor,
  argmax: DeviceTensor,
  xShape: readonly number[],
  p: Pool2dParams,
  y?: DeviceTensor,
): DeviceTensor {
  return backwardWith(dy, argmax, xShape, p, perInvocation(dy.engine), y);
}

function backwardWith(dy: DeviceTensor, argmax: DeviceTensor, xShape: readonly number[], p: Pool2dParams, v: number, y?: DeviceTensor): DeviceTensor {
  const outShape = pool2dOutShape('maxPool2d.backward', xShape, p);
  const same = (s: readonly number[]) => s.length === 4 && s.every((d, i) => d === outShape[i]);
  if (dy.dtype !== 'f32' || !same(dy.shape))
    throw new ShapeError(
      `maxPool2d.backward: dy ${dy.dtype} ${shapeString(dy.shape)} must be f32 ${shapeString(outShape)} for x ${shapeString(xShape)}`,
    );
  if (argmax.dtype !== 'i32' || !same(argmax.shape))
    throw new ShapeError(
      `maxPool2d.backward: argmax ${argmax.dtype} ${shapeString(argmax.shape)} must be i32 ${shapeString(outShape)}`,
    );
  if (p.relu && (!y || y.dtype !== 'f32' || !same(y.shape)))
    throw new ShapeError(`maxPool2d.backward: with a folded ReLU, the forward's output y (f32 ${shapeString(outShape)}) is needed${y ? `, got ${y.dtype} ${shapeString(y.shape)}` : ''}`);
  const e = dy.engine;
  const dx = e.empty(xShape);
  const label = `maxPool2d.backward ${shapeString(xShape)} k${p.kernel} s${p.stride}${p.relu ? ' +relu' : ''}`;
  const [n, c, h, w] = xShape;
  const yUnit = c * outShape[2] * outShape[3];
  const operands = [
    { tensor: dy, name: 'dy', unit: yUnit },
    { tensor: argmax, name: 'argmax', unit: yUnit },
    { tensor: dx, name: 'dx', unit: c * h * w, output: true },
    // The gate's source; without a folded ReLU, dy stands in (the shader does not read it).
    { tensor: p.relu ? y! : dy, name: 'y', unit: yUnit },
  ];
  forEachSplit(e, label, n, operands, (r, [dys, ams, dxs, gate]) => {
    e.dispatch({
      shader: 'maxpool2d',
      entry: 'backward',
      constants: { V: v, NON_OVERLAPPING: p.kernel[0] <= p.stride[0] && p.kernel[1] <= p.stride[1], RELU: !!p.relu },
      uniforms: uniforms(dxs.shape, dys.shape, p),
      bindings: [dys, ams, dxs, gate],
      workgroups: e.grid(Math.ceil(dxs.size / v), WG),
      label,
    });
  });
  return dx;
}

const V_SW = SOFTWARE_PER_INVOCATION;
export const maxPool2dForwardOp = defineOp<typeof maxPool2dForward>('maxPool2d.forward');
maxPool2dForwardOp.register('chunked', (x: DeviceTensor, p: Pool2dParams) => forwardWith(x, p, V_SW), {
  description: `${V_SW} consecutive outputs per invocation`,
  preferredOn: ['software'],
});
maxPool2dForwardOp.register('per-element', (x: DeviceTensor, p: Pool2dParams) => forwardWith(x, p, 1), {
  description: 'one output per invocation',
  preferredOn: ['hardware'],
});
export const maxPool2dBackwardOp = defineOp<typeof maxPool2dBackward>('maxPool2d.backward');
maxPool2dBackwardOp.register('chunked',
  (dy: DeviceTensor, am: DeviceTensor, xShape: readonly number[], p: Pool2dParams, y?: DeviceTensor) => backwardWith(dy, am, xShape, p, V_SW, y),
  { description: `gather over the windows containing each input element, ${V_SW} elements per invocation`, preferredOn: ['software'] },
);
maxPool2dBackwardOp.register('per-element',
  (dy: DeviceTensor, am: DeviceTensor, xShape: readonly number[], p: Pool2dParams, y?: DeviceTensor) => backwardWith(dy, am, xShape, p, 1, y),
  { description: 'gather over the windows containing each input element, one per invocation', preferredOn: ['hardware'] },
);
