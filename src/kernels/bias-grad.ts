// Bias gradient for linear, conv2d and conv-transpose2d: the sum of dy over every axis except axis 1
// (shaders/bias_grad.wgsl). A dy over one storage binding is summed per range of axis 0 and the
// partial sums added (src/kernels/batch-split.ts).
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/engine.js';
import { ACTIVATION_CODE, checkGate, gateSplitOperands, type ActivationGate } from './activation.js';
import { defineOp } from './registry.js';
import { forEachSplit, sumParts } from './batch-split.js';

const WG = 64;

/**
 * With `vec4`, a dy whose trailing axes hold a multiple of 4 elements is read as vec4s (sum_spatial_vec4).
 * With `gate`, dy is read as dy * act'(gate.y).
 */
function biasGradGather(dy: DeviceTensor, vec4 = false, gate?: ActivationGate): DeviceTensor {
  if (dy.shape.length < 2) throw new ShapeError(`bias.backward: dy [${dy.shape.join(', ')}] must have at least 2 axes (axis 1 = channels)`);
  if (dy.dtype !== 'f32') throw new ShapeError(`bias.backward: dy [${dy.shape.join(', ')}] has dtype ${dy.dtype}; f32 is required`);
  checkGate('bias.backward', dy, gate);
  const e = dy.engine;
  const [A, C] = dy.shape;
  const B = dy.shape.slice(2).reduce((x, y) => x * y, 1);
  if (C === 0) return e.empty([C]);
  if (A * B === 0) {
    const db = e.empty([C]);
    e.clear(db);
    return db;
  }
  const max = e.limits.maxComputeWorkgroupsPerDimension;
  const spatial = B > 1;
  const label = `bias.backward dy [${dy.shape.join(', ')}]`;
  const parts: DeviceTensor[] = [];
  const operands = [{ tensor: dy, name: 'dy', unit: C * B }, ...gateSplitOperands(gate, C * B)];
  forEachSplit(e, label, A, operands, (r, [dys, gys]) => {
    const db = e.empty([C]);
    parts.push(db);
    e.dispatch({
      shader: 'bias_grad',
      entry: !spatial ? 'sum_rows' : vec4 && B % 4 === 0 ? 'sum_spatial_vec4' : 'sum_spatial',
      constants: { GATE: ACTIVATION_CODE[gate?.activation ?? 'none'] },
      uniforms: [r.count, C, B, f32(gate?.slope ?? 0.01)],
      bindings: [dys, db, gys ?? dys],
      workgroups: [Math.min(spatial ? C : Math.ceil(C / WG), max)],
      label,
    });
  });
  return sumParts(parts);
}

/** Sum of dy (or, with `gate`, of dy * act'(gate.y)) over every axis except axis 1: [N,C] -> [C]; [N,C,H,W] -> [C]. */
export function biasGrad(dy: DeviceTensor, gate?: ActivationGate): DeviceTensor {
  return biasBackwardOp.get(dy.engine)(dy, gate);
}

export const biasBackwardOp = defineOp<(dy: DeviceTensor, gate?: ActivationGate) => DeviceTensor>('bias.backward');
biasBackwardOp.register('gather', (dy, gate) => biasGradGather(dy, false, gate), {
  description: 'per-channel gather: one invocation per channel for [N,C], one workgroup per channel with a tree reduction otherwise',
  preferredOn: ['hardware'],
});
biasBackwardOp.register('gather-vec4', (dy, gate) => biasGradGather(dy, true, gate), {
  description: "as 'gather', reading dy as vec4s where each channel's spatial extent is a multiple of 4",
  preferredOn: ['software'],
});
