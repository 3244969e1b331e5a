// Mean-reduced losses: BCE, BCE with logits, softmax cross-entropy; forward and backward
// (shaders/loss.wgsl). Losses return 0-d tensors (shape [], size 1). Backward kernels take the
// upstream gradient of the loss as a 0-d tensor read on the GPU (null means 1).
// Inputs over one storage binding run per range of elements (rows for cross-entropy): the forward adds
// the ranges' partial losses, the backward is elementwise (src/kernels/batch-split.ts).
import { f32, type Engine } from '../gpu/engine.js';
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { perInvocation } from './elementwise.js';
import { reduceAxes } from './reduce.js';
import { defineOp } from './registry.js';
import { forEachSplit, sumParts } from './batch-split.js';

const WG = 64;
/** Elements summed serially per invocation by the forward passes. */
const CHUNK = 256;

const ones = new WeakMap<Engine, DeviceTensor>();

/** A per-engine constant 1-element tensor holding 1, bound when gradOut is null. */
function unitScalar(e: Engine): DeviceTensor {
  let t = ones.get(e);
  if (!t || t.isDisposed) {
    t = e.full([], 1);
    ones.set(e, t);
  }
  return t;
}

function checkF32(op: string, name: string, t: DeviceTensor): void {
  if (t.dtype !== 'f32') throw new ShapeError(`${op}: ${name} must be float32, got ${t.dtype} ${shapeString(t.shape)}`);
}

function checkPair(op: string, x: DeviceTensor, xName: string, target: DeviceTensor): void {
  checkF32(op, xName, x);
  checkF32(op, 'target', target);
  if (x.size !== target.size)
    throw new ShapeError(`${op}: ${xName} ${shapeString(x.shape)} and target ${shapeString(target.shape)} differ in size (they must have the same shape)`);
  if (x.shape.length !== target.shape.length || x.shape.some((d, i) => d !== target.shape[i]))
    throw new ShapeError(`${op}: ${xName} ${shapeString(x.shape)} and target ${shapeString(target.shape)} must have the same shape`);
  if (x.size === 0) throw new ShapeError(`${op}: the mean over an empty input ${shapeString(x.shape)} is undefined`);
}

function checkGrad(op: string, g: DeviceTensor | null): DeviceTensor | null {
  if (g === null) return null;
  checkF32(op, 'gradOut', g);
  if (g.size !== 1) throw new ShapeError(`${op}: gradOut must hold 1 element, got shape ${shapeString(g.shape)}`);
  return g;
}

function checkLogits(op: string, logits: DeviceTensor, labels: DeviceTensor): { rows: number; k: number } {
  checkF32(op, 'logits', logits);
  if (logits.shape.length !== 2 || logits.shape[0] === 0 || logits.shape[1] === 0)
    throw new ShapeError(`${op}: logits must be a non-empty [N, K] matrix, got ${shapeString(logits.shape)}`);
  const [rows, k] = logits.shape;
  if (labels.dtype !== 'i32')
    throw new ShapeError(`${op}: labels must be an i32 tensor of class indices, got ${labels.dtype} ${shapeString(labels.shape)}`);
  if (labels.shape.length !== 1 || labels.shape[0] !== rows)
    throw new ShapeError(
      `${op}: ${labels.size} labels for ${rows} rows of logits ${shapeString(logits.shape)}: labels must be [${rows}], got ${shapeString(labels.shape)}`,
    );
  return { rows, k };
}

/**
 * Runs a forward entry that writes alpha * (chunk sums of the loss terms), then sums the partials
 * into the 0-d loss (directly when one chunk covers everything).
 */
function chunkedLoss(
  entry: string,
  a: DeviceTensor,
  b: DeviceTensor,
  count: number,
  k: number,
  chunk: number,
  label: string,
): DeviceTensor {
  const e = a.engine;
  const losses: DeviceTensor[] = [];
  const operands = [{ tensor: a, name: 'input', unit: k }, { tensor: b, name: 'target', unit: 1 }];
  forEachSplit(e, label, count, operands, (r, [as, bs]) => {
    const parts = Math.ceil(r.count / chunk);
    const partial = e.empty(parts === 1 ? [] : [parts]);
    e.dispatch({
      shader: 'loss',
      entry,
      uniforms: [r.count, k, chunk, f32(1 / count)],
      bindings: [as, bs, partial],
      workgroups: e.grid(parts, WG),
      label,
    });
    if (parts === 1) losses.push(partial);
    else {
      losses.push(reduceAxes(partial, [true], [], 1, `${label} (sum of partials)`));
      partial.dispose();
    }
  }, { unitName: k > 1 ? 'row' : 'element' });
  return sumParts(losses);
}

function elementGrad(
  entry: string,
  a: DeviceTensor,
  b: DeviceTensor,
  gradOut: DeviceTensor | null,
  n: number,
  k: number,
  alpha: number,
  label: string,
  perRow = false,
): DeviceTensor {
  const e = a.engine;
  const da = e.empty(a.shape);
  // Elementwise entries take V elements per invocation (see elementwise.ts); cross-entropy one row.
  const v = perRow ? 1 : perInvocation(e);
  const g = gradOut ?? unitScalar(e);
  const operands = [
    { tensor: a, name: 'input', unit: k },
    { tensor: b, name: 'target', unit: 1 },
    { tensor: da, name: 'gradient', unit: k, output: true },
  ];
  forEachSplit(e, label, n, operands, (r, [as, bs, das]) => {
    e.dispatch({
      shader: 'loss',
      entry,
      constants: perRow ? {} : { V: v },
      uniforms: [r.count, k, 1, f32(alpha)],
      bindings: [as, bs, g, das],
      workgroups: e.grid(Math.ceil(r.count / v), WG),
      label,
    });
  }, { unitName: perRow ? 'row' : 'element' });
  return da;
}

/** mean(-(t log p + (1-t) log(1-p))), each log clamped at >= -100 (PyTorch's binary_cross_entropy). */
export function bceForward(p: DeviceTensor, target: DeviceTensor): DeviceTensor {
  checkPair('bce.forward', p, 'p', target);
  return chunkedLoss('bce_forward', p, target, p.size, 1, CHUNK, `bce.forward ${shapeString(p.shape)}`);
}

/** dp = gradOut * (p - t) / max(p (1-p), 1e-12) / n. */
export function bceBackward(p: DeviceTensor, target: DeviceTensor, gradOut: DeviceTensor | null): DeviceTensor {
  checkPair('bce.backward', p, 'p', target);
  const g = checkGrad('bce.backward', gradOut);
  return elementGrad('bce_backward', p, target, g, p.size, 1, 1 / p.size, `bce.backward ${shapeString(p.shape)}`);
}

/** mean(max(z,0) - z t + log(1 + exp(-|z|))). */
export function bceWithLogitsForward(z: DeviceTensor, target: DeviceTensor): DeviceTensor {
  checkPair('bceWithLogits.forward', z, 'z', target);
  return chunkedLoss('bce_with_logits_forward', z, target, z.size, 1, CHUNK, `bceWithLogits.forward ${shapeString(z.shape)}`);
}

/** dz = gradOut * (sigmoid(z) - t) / n. */
export function bceWithLogitsBackward(z: DeviceTensor, target: DeviceTensor, gradOut: DeviceTensor | null): DeviceTensor {
  checkPair('bceWithLogits.backward', z, 'z', target);
  const g = checkGrad('bceWithLogits.backward', gradOut);
  return elementGrad('bce_with_logits_backward', z, target, g, z.size, 1, 1 / z.size, `bceWithLogits.backward ${shapeString(z.shape)}`);
}

/** mean over rows of logsumexp(z_n) - z_n[label_n]; logits [N, K], labels i32 [N] (clamped into [0, K) on the GPU). */
export function crossEntropyForward(logits: DeviceTensor, labels: DeviceTensor): DeviceTensor {
  const { rows, k } = checkLogits('crossEntropy.forward', logits, labels);
  // Rows per invocation: about 1024 exp() each, and at most 256 terms in one serial sum.
  const chunk = Math.min(256, Math.max(1, Math.floor(1024 / k)));
  return chunkedLoss('cross_entropy_forward', logits, labels, rows, k, chunk, `crossEntropy.forward ${shapeString(logits.shape)}`);
}

/** dlogits = gradOut * (softmax(z) - onehot(label)) / N. */
export function crossEntropyBackward(logits: DeviceTensor, labels: DeviceTensor, gradOut: DeviceTensor | null): DeviceTensor {
  const { rows, k } = checkLogits('crossEntropy.backward', logits, labels);
  const g = checkGrad('crossEntropy.backward', gradOut);
  return elementGrad('cross_entropy_backward', logits, labels, g, rows, k, 1 / rows, `crossEntropy.backward ${shapeString(logits.shape)}`, true);
}

export const bceForwardOp = defineOp<typeof bceForward>('bce.forward');
bceForwardOp.register('chunked', bceForward, { description: 'chunk sums per invocation, then reduce' });
export const bceBackwardOp = defineOp<typeof bceBackward>('bce.backward');
bceBackwardOp.register('elementwise', bceBackward);
export const bceWithLogitsForwardOp = defineOp<typeof bceWithLogitsForward>('bceWithLogits.forward');
bceWithLogitsForwardOp.register('chunked', bceWithLogitsForward, { description: 'chunk sums per invocation, then reduce' });
export const bceWithLogitsBackwardOp = defineOp<typeof bceWithLogitsBackward>('bceWithLogits.backward');
bceWithLogitsBackwardOp.register('elementwise', bceWithLogitsBackward);
export const crossEntropyForwardOp = defineOp<typeof crossEntropyForward>('crossEntropy.forward');
crossEntropyForwardOp.register('rowwise', crossEntropyForward, { description: 'row chunks per invocation, then reduce' });
export const crossEntropyBackwardOp = defineOp<typeof crossEntropyBackward>('crossEntropy.backward');
crossEntropyBackwardOp.register('rowwise', crossEntropyBackward, { description: 'one invocation per row' });
