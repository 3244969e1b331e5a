// Bias gradient for linear, conv2d and conv-transpose2d: the sum of dy over every axis except axis 1
// (shaders/bias_grad.wgsl).
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { kernels } from './registry.js';

const WG = 64;

function biasGradGather(dy: DeviceTensor): DeviceTensor {
  if (dy.shape.length < 2) throw new ShapeError(`bias.backward: dy [${dy.shape.join(', ')}] must have at least 2 axes (axis 1 = channels)`);
  if (dy.dtype !== 'f32') throw new ShapeError(`bias.backward: dy [${dy.shape.join(', ')}] has dtype ${dy.dtype}; f32 is required`);
  const e = dy.engine;
  const [A, C] = dy.shape;
  const B = dy.shape.slice(2).reduce((x, y) => x * y, 1);
  const db = e.empty([C]);
  if (C === 0) return db;
  if (A * B === 0) {
    e.clear(db);
    return db;
  }
  const max = e.limits.maxComputeWorkgroupsPerDimension;
  const spatial = B > 1;
  e.dispatch({
    shader: 'bias_grad',
    entry: spatial ? 'sum_spatial' : 'sum_rows',
    uniforms: [A, C, B],
    bindings: [dy, db],
    workgroups: [Math.min(spatial ? C : Math.ceil(C / WG), max)],
    label: `bias.backward dy [${dy.shape.join(', ')}]`,
  });
  return db;
}

/** Sum of dy over every axis except axis 1: [N,C] -> [C]; [N,C,H,W] -> [C]. */
export function biasGrad(dy: DeviceTensor): DeviceTensor {
  return kernels.get<typeof biasGradGather>('bias.backward', dy.engine)(dy);
}

kernels.register('bias.backward', 'gather', biasGradGather, {
  description: 'per-channel gather: one invocation per channel for [N,C], one workgroup per channel with a tree reduction otherwise',
  preferredOn: ['software', 'hardware'],
});
