// Ops over tensors larger than one storage binding: the kernels' wrappers split them along a leading
// axis (the batch, rows, or plain elements) into ranges that each fit one binding, and bind each
// range of the buffer at an offset (DeviceTensor.view). The one mechanism every wrapper uses:
//
//   forEachSplit(e, label, units, operands, (range, parts) => { ...record the op on parts... })
//
// `units` is the length of the split axis; each operand says how many elements one unit holds in it
// (a sample C*H*W of x, of y, ...). When every operand fits one binding the body runs once on the
// whole tensors (exactly the unsplit op). Otherwise the ranges are as long as the tightest operand
// allows, and a multiple of the units that keep every range's start at a multiple of the device's
// minStorageBufferOffsetAlignment (engine.limits), so views bind without copies. Where even that
// alignment step does not fit (a huge odd-sized unit), ranges are cut anyway and the misaligned
// parts go through scratch tensors (inputs copied in, outputs copied back): copies need only 4-byte
// alignment.
//
// Ops independent per unit (conv forward, pooling, activations, ...) just run per range. Ops that
// reduce over the split axis (conv dW, bias grad, batch-norm sums, losses, ...) compute a partial
// result per range and add them up (sumParts), or index partial buffers by range (batch norm).
// A single unit over the limit cannot be split: TensorTooLargeError names the tensor and the limit.
import { formatBytes, type Engine } from '../gpu/engine.js';
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { TensorTooLargeError } from '../gpu/errors.js';
import { binary } from './elementwise.js';

export interface SplitOperand {
  tensor: DeviceTensor;
  /** Elements of one unit of the split axis in this tensor (e.g. C*H*W for a batch split of NCHW). */
  unit: number;
  /** Written by the op (a misaligned range is then computed into a scratch tensor and copied back). */
  output?: boolean;
  /** How errors call it, e.g. 'x', 'dy'. */
  name: string;
}

export interface SplitRange {
  /** First unit of the range. */
  start: number;
  /** Units in the range. */
  count: number;
}

export interface SplitOptions {
  /** Ranges hold a multiple of this many units (e.g. 4 elements: one Philox block of dropout). */
  granule?: number;
  /** What a unit is, for errors ('sample', 'row', 'element'). Default 'sample'. */
  unitName?: string;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number): number => (a / gcd(a, b)) * b;

/** True when every operand fits one binding (the op then runs unsplit). */
export function fitsOneBinding(e: Engine, operands: readonly SplitOperand[]): boolean {
  const max = e.limits.maxStorageBufferBindingSize;
  return operands.every((o) => Math.max(4, o.tensor.byteLength) <= max);
}

/**
 * The ranges of [0, units) that forEachSplit runs: one range when everything fits; otherwise ranges of
 * equal length (the last one shorter) whose parts each fit one binding and, where possible, start
 * aligned. Throws TensorTooLargeError when a single unit (times the granule) of an operand is over the limit.
 */
export function splitRanges(e: Engine, label: string, units: number, operands: readonly SplitOperand[], options: SplitOptions = {}): SplitRange[] {
  if (units <= 1 || fitsOneBinding(e, operands)) {
    if (units <= 1) checkFits(e, label, operands, options);
    return [{ start: 0, count: units }];
  }
  const max = e.limits.maxStorageBufferBindingSize;
  const align = e.limits.minStorageBufferOffsetAlignment;
  const granule = options.granule ?? 1;
  let most = Infinity; // units per range that every operand can bind
  let step = granule; // units per range that keep every operand's ranges aligned
  for (const o of operands) {
    const bytes = o.unit * 4;
    if (bytes === 0) continue;
    most = Math.min(most, Math.floor(max / bytes));
    step = lcm(step, align / gcd(align, bytes));
  }
  let count = Math.floor(most / step) * step;
  if (count === 0) count = Math.floor(most / granule) * granule; // misaligned ranges (scratch copies)
  if (count === 0) {
    // One unit (granule) of some operand is over the limit: name the first such operand.
    const o = operands.find((p) => p.unit * 4 * granule > max) ?? operands[0];
    throw tooLarge(e, label, o, options, granule);
  }
  const ranges: SplitRange[] = [];
  for (let start = 0; start < units; start += count) ranges.push({ start, count: Math.min(count, units - start) });
  return ranges;
}

function checkFits(e: Engine, label: string, operands: readonly SplitOperand[], options: SplitOptions): void {
  const max = e.limits.maxStorageBufferBindingSize;
  for (const o of operands) if (Math.max(4, o.tensor.byteLength) > max) throw tooLarge(e, label, o, options, 1);
}

function tooLarge(e: Engine, label: string, o: SplitOperand, options: SplitOptions, granule: number): TensorTooLargeError {
  const max = e.limits.maxStorageBufferBindingSize;
  const unitName = options.unitName ?? 'sample';
  const what = granule > 1 ? `${granule} ${unitName}s` : `one ${unitName}`;
  return new TensorTooLargeError(
    `${label}: ${o.name} ${shapeString(o.tensor.shape)} (${formatBytes(o.tensor.byteLength)}) does not fit one storage binding, ` +
      `and ${what} of it (${formatBytes(o.unit * 4 * granule)}) is already over the device's maxStorageBufferBindingSize ` +
      `of ${formatBytes(max)}: the op cannot be split along the ${unitName}s; use smaller ${unitName}s (e.g. smaller images or fewer channels)`,
  );
}

/** The part of an operand for a range: a view with the tensor's trailing dims when the split axis is its leading one, else flat. */
function partOf(o: SplitOperand, units: number, r: SplitRange): DeviceTensor {
  const t = o.tensor;
  const leading = t.shape.length > 0 && t.shape[0] === units && units * o.unit === t.size;
  const shape = leading ? [r.count, ...t.shape.slice(1)] : [r.count * o.unit];
  return t.view(r.start * o.unit, shape);
}

/**
 * Runs `body` once per range of the split axis (see the module comment), with each operand's part of
 * that range in the order given: the whole tensors when everything fits one binding.
 */
export function forEachSplit(
  e: Engine,
  label: string,
  units: number,
  operands: readonly SplitOperand[],
  body: (range: SplitRange, parts: DeviceTensor[], index: number) => void,
  options: SplitOptions = {},
): void {
  const ranges = splitRanges(e, label, units, operands, options);
  if (ranges.length === 1) {
    body(ranges[0], operands.map((o) => o.tensor), 0);
    return;
  }
  const align = e.limits.minStorageBufferOffsetAlignment;
  ranges.forEach((r, index) => {
    const views = operands.map((o) => partOf(o, units, r));
    const scratch = views.map((v, i) => {
      if (v.byteOffset % align === 0) return undefined;
      const s = e.empty(v.shape, v.dtype);
      if (!operands[i].output) e.copy(v, s);
      return s;
    });
    try {
      body(r, views.map((v, i) => scratch[i] ?? v), index);
      scratch.forEach((s, i) => {
        if (s && operands[i].output) e.copy(s, views[i]);
      });
    } finally {
      // Safe right after recording: the pool reuses a buffer only after the work using it is submitted.
      for (const v of views) v.dispose();
      for (const s of scratch) s?.dispose();
    }
  });
}

/**
 * Sum of same-shape partial results (one per range of a reduction over the split axis), in order;
 * the parts are released. One part is returned as it is.
 */
export function sumParts(parts: DeviceTensor[]): DeviceTensor {
  let acc = parts[0];
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i].shape.length === acc.shape.length ? parts[i] : parts[i].reshape(acc.shape);
    const next = binary(acc, p, 'add');
    acc.dispose();
    if (p !== parts[i]) p.dispose();
    parts[i].dispose();
    acc = next;
  }
  return acc;
}
