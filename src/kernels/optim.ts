// Optimizer updates (shaders/optim.wgsl): in place on the GPU, one dispatch per parameter tensor.
import { f32 } from '../gpu/engine.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { kernels } from './registry.js';

const WG = 256;

export interface AdamParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** t, starting at 1. */
  step: number;
}

export interface SgdParams {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** True on the first step with momentum: the buffer starts as the gradient. */
  firstStep: boolean;
}

function sameSize(op: string, param: DeviceTensor, others: Record<string, DeviceTensor>): void {
  if (param.dtype !== 'f32') throw new ShapeError(`${op}: param must be f32, got ${param.dtype}`);
  for (const [name, t] of Object.entries(others)) {
    if (t.size !== param.size || t.dtype !== 'f32')
      throw new ShapeError(
        `${op}: ${name} ${JSON.stringify(t.shape)} (${t.dtype}) does not match param ${JSON.stringify(param.shape)}`,
      );
  }
}

/** PyTorch's torch.optim.Adam step (L2 weight decay into the gradient; not AdamW). Updates param, expAvg, expAvgSq in place. */
export function adamStep(param: DeviceTensor, grad: DeviceTensor, expAvg: DeviceTensor, expAvgSq: DeviceTensor, p: AdamParams): void {
  sameSize('optim.adam', param, { grad, expAvg, expAvgSq });
  if (!Number.isInteger(p.step) || p.step < 1) throw new RangeError(`optim.adam: step ${p.step} must be an integer >= 1`);
  const e = param.engine;
  // Bias corrections in float64, then rounded once to f32.
  const bc1 = 1 - p.beta1 ** p.step;
  const bc2 = 1 - p.beta2 ** p.step;
  e.dispatch({
    shader: 'optim',
    entry: 'adam',
    uniforms: [
      param.size,
      f32(p.beta1),
      f32(1 - p.beta1),
      f32(p.beta2),
      f32(1 - p.beta2),
      f32(p.lr / bc1),
      f32(Math.sqrt(bc2)),
      f32(p.eps),
      f32(p.weightDecay),
    ],
    bindings: [param, grad, expAvg, expAvgSq],
    workgroups: e.grid(param.size, WG),
    label: `optim.adam ${JSON.stringify(param.shape)} t=${p.step}`,
  });
}

/** PyTorch's torch.optim.SGD step. `velocity` (the momentum buffer) is required when momentum != 0. */
export function sgdStep(param: DeviceTensor, grad: DeviceTensor, velocity: DeviceTensor | null, p: SgdParams): void {
  sameSize('optim.sgd', param, velocity ? { grad, velocity } : { grad });
  const e = param.engine;
  const uniforms = [
    param.size,
    p.firstStep ? 1 : 0,
    p.nesterov ? 1 : 0,
    f32(p.lr),
    f32(p.momentum),
    f32(1 - p.dampening),
    f32(p.weightDecay),
  ];
  const useMomentum = p.momentum !== 0;
  if (useMomentum && !velocity) throw new ShapeError('optim.sgd: momentum != 0 needs a velocity tensor');
  e.dispatch({
    shader: 'optim',
    entry: useMomentum ? 'sgd_momentum' : 'sgd_plain',
    uniforms,
    bindings: useMomentum ? [param, grad, velocity!] : [param, grad],
    workgroups: e.grid(param.size, WG),
    label: `optim.sgd ${JSON.stringify(param.shape)}`,
  });
}

kernels.register('optim.adam', 'elementwise', adamStep, { description: 'PyTorch Adam, one invocation per element, in place' });
kernels.register('optim.sgd', 'elementwise', sgdStep, {
  description: 'PyTorch SGD (momentum, dampening, nesterov, weight decay), one invocation per element, in place',
});
