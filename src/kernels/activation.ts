// ReLU, leaky ReLU, sigmoid and tanh: forward and backward (shaders/activation.wgsl).
// Tensors over one storage binding run per range of elements (src/kernels/batch-split.ts).
import { f32 } from '../gpu/engine.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { InvalidArgumentError, ShapeError } from '../gpu/errors.js';
import { defineOp } from './registry.js';
import { forEachSplit, type SplitOperand } from './batch-split.js';
import { perInvocation, SOFTWARE_PER_INVOCATION } from './elementwise.js';
import { ACTIVATION_CODE, type Activation } from './activation-codes.js';

// Declared in activation-codes.ts (with the WGSL constants); re-exported for the kernel's callers.
export { ACTIVATION_CODE, type Activation };

const WG = 256;

/**
 * A fused activation's backward, folded into the backward pass that reads dy: the pass reads
 * dy * act'(y) instead of dy (y: the layer's forward output, dy's shape), so no separate
 * activation-backward pass writes dz for it (the GEMM readers and the bias gradient fold it in).
 */
export interface ActivationGate {
  y: DeviceTensor;
  activation: Activation;
  /** Leaky ReLU's negative slope. */
  slope: number;
}

/** Throws unless `gate` (if any) can gate `dy` of op `op`: an f32 y of dy's shape, a real activation. */
export function checkGate(op: string, dy: DeviceTensor, gate: ActivationGate | undefined): void {
  if (!gate) return;
  const s = (t: readonly number[]) => `[${t.join(', ')}]`;
  if (gate.y.dtype !== 'f32' || gate.y.shape.length !== dy.shape.length || gate.y.shape.some((d, i) => d !== dy.shape[i]))
    throw new ShapeError(`${op}: the activation gate's y ${s(gate.y.shape)} (${gate.y.dtype}) must be f32 of dy's shape ${s(dy.shape)}`);
  if (!(gate.activation in ACTIVATION_CODE) || gate.activation === 'none')
    throw new ShapeError(`${op}: the activation gate needs an activation (relu, leakyRelu, sigmoid or tanh), got '${gate.activation}'`);
  if (gate.y.engine !== dy.engine) throw new InvalidArgumentError(`${op}: the activation gate's y belongs to another engine than dy`);
}

/**
 * The gate's y as a split operand (src/kernels/batch-split.ts) beside the tensor it gates, which has
 * `unit` elements per unit of the split axis (y has its shape, so the same): none without a gate.
 */
export function gateSplitOperands(gate: ActivationGate | undefined, unit: number): SplitOperand[] {
  return gate ? [{ tensor: gate.y, name: 'activation output', unit }] : [];
}

/** The gate of one split range, whose y is `part` (that range's view of gate.y); none without a gate. */
export function gatePart(gate: ActivationGate | undefined, part: DeviceTensor | undefined): ActivationGate | undefined {
  return gate && part ? { ...gate, y: part } : undefined;
}

/** dy * act'(y) as its own pass: for a variant that cannot fold the gate into its reads. */
export function applyGate(dy: DeviceTensor, gate: ActivationGate): DeviceTensor {
  return activationBackwardOp.get(dy.engine)(gate.y, dy, gate.activation, gate.slope);
}

/** y = act(x). `slope` is leaky ReLU's negative slope (must be > 0). */
export function activationForward(x: DeviceTensor, act: Activation, slope = 0.01): DeviceTensor {
  return forwardWith(x, act, slope, perInvocation(x.engine));
}

/** dx = dy * act'(x), computed from the forward OUTPUT y. */
export function activationBackward(y: DeviceTensor, dy: DeviceTensor, act: Activation, slope = 0.01): DeviceTensor {
  return backwardWith(y, dy, act, slope, perInvocation(y.engine));
}

/** activationForward with v consecutive elements per invocation. */
function forwardWith(x: DeviceTensor, act: Activation, slope: number, v: number): DeviceTensor {
  const e = x.engine;
  const y = e.empty(x.shape);
  const label = `${act}.forward ${JSON.stringify(x.shape)}`;
  const operands = [{ tensor: x, name: 'x', unit: 1 }, { tensor: y, name: 'y', unit: 1, output: true }];
  forEachSplit(e, label, x.size, operands, (r, [xs, ys]) => {
    e.dispatch({
      shader: 'activation',
      entry: 'forward',
      constants: { ACT: ACTIVATION_CODE[act], V: v },
      uniforms: [r.count, f32(slope)],
      bindings: [xs, ys],
      workgroups: e.grid(Math.ceil(r.count / v), WG),
      label,
    });
  }, { unitName: 'element' });
  return y;
}

function backwardWith(y: DeviceTensor, dy: DeviceTensor, act: Activation, slope: number, v: number): DeviceTensor {
  if (y.size !== dy.size) throw new ShapeError(`${act} backward: y has ${y.size} elements, dy has ${dy.size}`);
  const e = y.engine;
  const dx = e.empty(y.shape);
  const label = `${act}.backward ${JSON.stringify(y.shape)}`;
  const operands = [{ tensor: y, name: 'y', unit: 1 }, { tensor: dx, name: 'dx', unit: 1, output: true }, { tensor: dy, name: 'dy', unit: 1 }];
  forEachSplit(e, label, y.size, operands, (r, [ys, dxs, dys]) => {
    e.dispatch({
      shader: 'activation',
      entry: 'backward',
      constants: { ACT: ACTIVATION_CODE[act], V: v },
      uniforms: [r.count, f32(slope)],
      bindings: [ys, dxs, dys],
      workgroups: e.grid(Math.ceil(r.count / v), WG),
      label,
    });
  }, { unitName: 'element' });
  return dx;
}

const V_SW = SOFTWARE_PER_INVOCATION;
export const activationForwardOp = defineOp<typeof activationForward>('activation.forward');
activationForwardOp.register('elementwise', (x, act, slope = 0.01) => forwardWith(x, act, slope, 1), {
  description: 'one element per invocation (coalesced on real GPUs)',
  preferredOn: ['hardware'],
});
activationForwardOp.register('chunked', (x, act, slope = 0.01) => forwardWith(x, act, slope, V_SW), {
  description: `${V_SW} consecutive elements per invocation`,
  preferredOn: ['software'],
});
export const activationBackwardOp = defineOp<typeof activationBackward>('activation.backward');
activationBackwardOp.register('elementwise', (y, dy, act, slope = 0.01) => backwardWith(y, dy, act, slope, 1), {
  description: 'one element per invocation (coalesced on real GPUs)',
  preferredOn: ['hardware'],
});
activationBackwardOp.register('chunked', (y, dy, act, slope = 0.01) => backwardWith(y, dy, act, slope, V_SW), {
  description: `${V_SW} consecutive elements per invocation`,
  preferredOn: ['software'],
});
