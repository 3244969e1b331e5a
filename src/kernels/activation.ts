// ReLU, leaky ReLU, sigmoid and tanh: forward and backward (shaders/activation.wgsl).
import { f32 } from '../gpu/engine.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { kernels } from './registry.js';

export type Activation = 'none' | 'relu' | 'leakyRelu' | 'sigmoid' | 'tanh';

/** Codes of lib/common.wgsl's ACT_* constants. */
export const ACTIVATION_CODE: Record<Activation, number> = { none: 0, relu: 1, leakyRelu: 2, sigmoid: 3, tanh: 4 };

const WG = 256;

/** y = act(x). `slope` is leaky ReLU's negative slope (must be > 0). */
export function activationForward(x: DeviceTensor, act: Activation, slope = 0.01): DeviceTensor {
  const e = x.engine;
  const y = e.empty(x.shape);
  e.dispatch({
    shader: 'activation',
    entry: 'forward',
    constants: { ACT: ACTIVATION_CODE[act] },
    uniforms: [x.size, f32(slope)],
    bindings: [x, y],
    workgroups: e.grid(x.size, WG),
    label: `${act}.forward ${JSON.stringify(x.shape)}`,
  });
  return y;
}

/** dx = dy * act'(x), computed from the forward OUTPUT y. */
export function activationBackward(y: DeviceTensor, dy: DeviceTensor, act: Activation, slope = 0.01): DeviceTensor {
  if (y.size !== dy.size) throw new ShapeError(`${act} backward: y has ${y.size} elements, dy has ${dy.size}`);
  const e = y.engine;
  const dx = e.empty(y.shape);
  e.dispatch({
    shader: 'activation',
    entry: 'backward',
    constants: { ACT: ACTIVATION_CODE[act] },
    uniforms: [y.size, f32(slope)],
    bindings: [y, dx, dy],
    workgroups: e.grid(y.size, WG),
    label: `${act}.backward ${JSON.stringify(y.shape)}`,
  });
  return dx;
}

kernels.register('activation.forward', 'elementwise', activationForward);
kernels.register('activation.backward', 'elementwise', activationBackward);
