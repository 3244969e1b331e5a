// Optimizer updates (shaders/optim.wgsl): in place on the GPU. adamStep and sgdStep update one
// parameter tensor per dispatch; adamMultiStep up to 3 or 7 per dispatch (as the device's storage-buffer
// limit allows), with the moments of all of them in two flat state buffers (what nn.optim.Adam uses).
import { f32, type Engine, type UniformValue } from '../gpu/engine.js';
import type { PooledBuffer } from '../gpu/buffer-pool.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { defineOp } from './registry.js';

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

/** One parameter of a multi-tensor Adam step: its moments are exp_avg[offset .. offset + size) (and exp_avg_sq). */
export interface AdamMultiItem {
  param: DeviceTensor;
  grad: DeviceTensor;
  /** First element of the parameter's moments in the flat state buffers. */
  offset: number;
}

/** Parameter tensors per dispatch of adamMultiStep on an engine: 7 where 16 storage buffers may be bound, else 3 (WebGPU's minimum is 8). */
export function adamMultiSlots(e: Engine): number {
  return e.limits.maxStorageBuffersPerShaderStage >= 16 ? 7 : 3;
}

const spares = new WeakMap<Engine, { params: DeviceTensor[]; grad: DeviceTensor }>();

/**
 * Tensors bound to a dispatch's unused slots. Each unused parameter slot needs a buffer of its own:
 * WebGPU refuses a writable binding that aliases another binding of the same dispatch.
 */
function spareBindings(e: Engine): { params: DeviceTensor[]; grad: DeviceTensor } {
  let s = spares.get(e);
  if (!s || s.grad.isDisposed) {
    // 4 elements: also a valid (16-byte) binding for the vec4 entry points.
    s = { params: Array.from({ length: 6 }, () => e.zeros([4])), grad: e.zeros([4]) };
    spares.set(e, s);
  }
  return s;
}

/**
 * PyTorch's Adam step (as adamStep, bit for bit) for several parameters at once: each item's param is
 * updated in place with its grad, its moments at `offset` in the flat expAvg / expAvgSq. Items are
 * grouped into dispatches of adamMultiSlots(engine) parameters (items sharing a buffer go to different
 * dispatches). `slots` (3, or 7 where the device allows) overrides the parameters per dispatch, for tests.
 */
export function adamMultiStep(items: readonly AdamMultiItem[], expAvg: DeviceTensor, expAvgSq: DeviceTensor, p: AdamParams, slots?: number): void {
  if (!Number.isInteger(p.step) || p.step < 1) throw new RangeError(`optim.adamMulti: step ${p.step} must be an integer >= 1`);
  if (expAvg.dtype !== 'f32' || expAvgSq.dtype !== 'f32' || expAvgSq.size !== expAvg.size)
    throw new ShapeError(`optim.adamMulti: expAvg ${JSON.stringify(expAvg.shape)} and expAvgSq ${JSON.stringify(expAvgSq.shape)} must be f32 tensors of one size`);
  for (const it of items) {
    sameSize('optim.adamMulti', it.param, { grad: it.grad });
    if (!Number.isInteger(it.offset) || it.offset < 0 || it.offset + it.param.size > expAvg.size)
      throw new ShapeError(`optim.adamMulti: moments at ${it.offset} of a parameter ${JSON.stringify(it.param.shape)} lie outside the state buffers (${expAvg.size} elements)`);
  }
  if (items.length === 0) return;
  const e = expAvg.engine;
  const most = adamMultiSlots(e);
  const perDispatch = slots ?? most;
  if (perDispatch !== 3 && perDispatch !== most) throw new RangeError(`optim.adamMulti: ${perDispatch} parameters per dispatch; this device runs 3 or ${most}`);
  const bc1 = 1 - p.beta1 ** p.step;
  const bc2 = 1 - p.beta2 ** p.step;
  const hyper: UniformValue[] = [
    f32(p.beta1), f32(1 - p.beta1), f32(p.beta2), f32(1 - p.beta2), f32(p.lr / bc1), f32(Math.sqrt(bc2)), f32(p.eps), f32(p.weightDecay),
  ];
  // Parameters whose elements, moments and bindings fall in whole vec4s take the vec4 entry points (one
  // storage access per 4 elements; bit-identical), the others the scalar ones.
  const stateAligned = expAvg.byteOffset % 16 === 0 && expAvgSq.byteOffset % 16 === 0;
  const vec4 = (it: AdamMultiItem) => stateAligned && it.param.size % 4 === 0 && it.offset % 4 === 0 && it.param.byteOffset % 16 === 0 && it.grad.byteOffset % 16 === 0;
  for (const wide of [true, false]) {
    let group: AdamMultiItem[] = [];
    let storages = new Set<PooledBuffer>();
    const flush = () => {
      if (group.length) dispatchAdamMulti(e, group, perDispatch, expAvg, expAvgSq, hyper, p.step, wide);
      group = [];
      storages = new Set();
    };
    for (const it of items) {
      if (vec4(it) !== wide) continue;
      if (group.length === perDispatch || storages.has(it.param.storage) || storages.has(it.grad.storage)) flush();
      group.push(it);
      storages.add(it.param.storage);
      storages.add(it.grad.storage);
    }
    flush();
  }
}

/** One dispatch of adam_multi{3,7} (or their _vec4 forms, with `wide`: sizes and offsets in vec4s). */
function dispatchAdamMulti(e: Engine, group: AdamMultiItem[], slots: number, m: DeviceTensor, v: DeviceTensor, hyper: UniformValue[], step: number, wide: boolean): void {
  const unit = wide ? 4 : 1;
  const n = new Array<number>(8).fill(0);
  const off = new Array<number>(8).fill(0);
  const start = new Array<number>(8).fill(0);
  let workgroups = 0;
  group.forEach((it, k) => {
    n[k] = it.param.size / unit;
    off[k] = it.offset / unit;
    start[k] = workgroups;
    workgroups += Math.ceil(n[k] / WG);
  });
  start[group.length] = workgroups;
  if (workgroups === 0) return;
  const spare = spareBindings(e);
  const bindings: DeviceTensor[] = [m, v];
  for (let k = 0; k < slots; k++) {
    const it = group[k];
    bindings.push(it ? it.param : spare.params[k - 1], it ? it.grad : spare.grad);
  }
  e.dispatch({
    shader: 'optim',
    entry: `adam_multi${slots === 7 ? 7 : 3}${wide ? '_vec4' : ''}`,
    uniforms: [...n, ...off, ...start, group.length, ...hyper],
    bindings,
    workgroups: e.grid(workgroups * WG, WG),
    label: `optim.adamMulti${wide ? ' (vec4)' : ''} ${group.map((it) => JSON.stringify(it.param.shape)).join(' ')} t=${step}`,
  });
}

export const optimAdamMultiOp = defineOp<typeof adamMultiStep>('optim.adamMulti');
optimAdamMultiOp.register('slots', adamMultiStep, {
  description: 'PyTorch Adam over several parameters per dispatch (3 or 7 as the storage-buffer limit allows), moments in flat state buffers',
});
export const optimAdamOp = defineOp<typeof adamStep>('optim.adam');
optimAdamOp.register('elementwise', adamStep, { description: 'PyTorch Adam, one invocation per element, in place' });
export const optimSgdOp = defineOp<typeof sgdStep>('optim.sgd');
optimSgdOp.register('elementwise', sgdStep, {
  description: 'PyTorch SGD (momentum, dampening, nesterov, weight decay), one invocation per element, in place',
});
