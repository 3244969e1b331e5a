// Softmax over the last dimension, forward and backward (shaders/softmax.wgsl). Tensors over one
// storage binding run per range of rows (src/kernels/batch-split.ts).
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { defineOp } from './registry.js';
import { forEachSplit } from './batch-split.js';

const WG = 64;

function rowsOf(op: string, x: DeviceTensor): { rows: number; k: number } {
  if (x.dtype !== 'f32') throw new ShapeError(`${op}: expected a float32 tensor, got ${x.dtype} ${shapeString(x.shape)}`);
  if (x.shape.length === 0) throw new ShapeError(`${op}: needs at least one dimension, got a 0-d tensor`);
  const k = x.shape[x.shape.length - 1];
  return { rows: k === 0 ? 0 : x.size / k, k };
}

/** Softmax over the last dimension (numerically stable: the row max is subtracted first). */
export function softmaxForward(x: DeviceTensor): DeviceTensor {
  const { rows, k } = rowsOf('softmax.forward', x);
  const e = x.engine;
  const y = e.empty(x.shape);
  const label = `softmax.forward ${shapeString(x.shape)}`;
  const operands = [{ tensor: x, name: 'x', unit: k }, { tensor: y, name: 'y', unit: k, output: true }];
  forEachSplit(e, label, rows, operands, (r, [xs, ys]) => {
    e.dispatch({
      shader: 'softmax',
      entry: 'forward',
      uniforms: [r.count, k],
      bindings: [xs, ys],
      workgroups: e.grid(r.count, WG),
      label,
    });
  }, { unitName: 'row' });
  return y;
}

/** dx = y * (dy - sum(dy * y)) per row, from the forward output y. */
export function softmaxBackward(y: DeviceTensor, dy: DeviceTensor): DeviceTensor {
  const { rows, k } = rowsOf('softmax.backward', y);
  if (dy.dtype !== 'f32' || dy.shape.length !== y.shape.length || dy.shape.some((d, i) => d !== y.shape[i]))
    throw new ShapeError(`softmax.backward: dy ${dy.dtype} ${shapeString(dy.shape)} does not match y ${shapeString(y.shape)}`);
  const e = y.engine;
  const dx = e.empty(y.shape);
  const label = `softmax.backward ${shapeString(y.shape)}`;
  const operands = [{ tensor: y, name: 'y', unit: k }, { tensor: dx, name: 'dx', unit: k, output: true }, { tensor: dy, name: 'dy', unit: k }];
  forEachSplit(e, label, rows, operands, (r, [ys, dxs, dys]) => {
    e.dispatch({
      shader: 'softmax',
      entry: 'backward',
      uniforms: [r.count, k],
      bindings: [ys, dxs, dys],
      workgroups: e.grid(r.count, WG),
      label,
    });
  }, { unitName: 'row' });
  return dx;
}

export const softmaxForwardOp = defineOp<typeof softmaxForward>('softmax.forward');
softmaxForwardOp.register('rowwise', softmaxForward, { description: 'one invocation per row' });
export const softmaxBackwardOp = defineOp<typeof softmaxBackward>('softmax.backward');
softmaxBackwardOp.register('rowwise', softmaxBackward, { description: 'one invocation per row' });
