// Sum and mean over axes, and sumToShape (the gradient of broadcasting) (shaders/reduce.wgsl).
//
// Scheme: every invocation sums one contiguous chunk of <= CHUNK terms of one output serially and
// writes a partial; while more than one partial per output remains, the same kernel reduces the
// partials ([M, parts], contiguous). No shared memory, no atomics. Accuracy: each level is a serial
// float32 sum of <= 256 terms, so the error grows with log_256(R) levels rather than with R; the
// tests check 32*224*224 elements to 1e-5 relative (see test/reduce.test.ts).
// An x over one storage binding is split along its outermost (merged) dim (src/kernels/batch-split.ts):
// a reduced one gives a partial result per range, added up; a kept one a range of the outputs.
import { f32 } from '../gpu/engine.js';
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { defineOp } from './registry.js';
import { forEachSplit, sumParts } from './batch-split.js';

const WG = 64;
/** Terms summed serially by one invocation at each level. */
export const REDUCE_CHUNK = 256;
/** Kept and reduced dims the shader's uniform struct holds (after merging neighbours). */
const MAX_GROUP_DIMS = 4;

interface Dim {
  size: number;
  stride: number;
}

/** Normalises `axes` (negative allowed) for a tensor of rank `rank`; throws ShapeError on bad or repeated axes. */
export function normalizeAxes(op: string, shape: readonly number[], axes: number[] | null): boolean[] {
  const rank = shape.length;
  const mask = new Array<boolean>(rank).fill(axes === null);
  if (axes === null) return mask;
  for (const a of axes) {
    if (!Number.isInteger(a) || a < -rank || a >= rank)
      throw new ShapeError(`${op}: axis ${a} is out of range for shape ${shapeString(shape)}`);
    const i = a < 0 ? a + rank : a;
    if (mask[i]) throw new ShapeError(`${op}: axis ${a} is repeated in [${axes.join(', ')}] (shape ${shapeString(shape)})`);
    mask[i] = true;
  }
  return mask;
}

/**
 * Sums x over the axes flagged in `reduced`, times `alpha`, into a new tensor of shape `outShape`
 * (whose size must be the product of the kept dims). The building block of sum/mean/sumToShape and
 * of the losses' final reduction.
 */
export function reduceAxes(
  x: DeviceTensor,
  reduced: readonly boolean[],
  outShape: readonly number[],
  alpha = 1,
  label = 'reduce',
): DeviceTensor {
  if (x.dtype !== 'f32') throw new ShapeError(`${label}: expected a float32 tensor, got ${x.dtype} ${shapeString(x.shape)}`);
  if (reduced.length !== x.shape.length) throw new Error(`${label}: axis mask of rank ${reduced.length} for shape ${shapeString(x.shape)}`);
  // Merge neighbouring dims of the same kind (innermost first); size-1 dims play no part.
  const kept: Dim[] = [];
  const red: Dim[] = [];
  let stride = 1;
  let last: boolean | undefined;
  for (let i = x.shape.length - 1; i >= 0; i--) {
    const size = x.shape[i];
    if (size !== 1) {
      const list = reduced[i] ? red : kept;
      if (last === reduced[i]) list[list.length - 1].size *= size;
      else list.push({ size, stride });
      last = reduced[i];
    }
    stride *= size;
  }
  if (kept.length > MAX_GROUP_DIMS || red.length > MAX_GROUP_DIMS)
    throw new ShapeError(
      `${label}: shape ${shapeString(x.shape)} alternates reduced and kept axes too often (at most ${MAX_GROUP_DIMS} groups of each)`,
    );
  const m = kept.reduce((p, d) => p * d.size, 1);
  const r = red.reduce((p, d) => p * d.size, 1);
  const e = x.engine;
  const out = e.empty(outShape);
  if (out.size !== m) throw new Error(`${label}: output shape ${shapeString(outShape)} does not hold ${m} results`);
  if (m === 0) return out;
  // The outermost merged dim (the last one pushed) and whether it is reduced.
  const outerReduced = last === true;
  const outer = outerReduced ? red[red.length - 1] : kept[kept.length - 1];
  if (!outer) {
    run(x, kept, red, m, r, alpha, out, label);
    return out;
  }
  const withOuter = (dims: Dim[], count: number): Dim[] => [...dims.slice(0, -1), { size: count, stride: outer.stride }];
  if (outerReduced) {
    // One partial result per range of the outer reduced dim (the whole result when x fits one binding).
    const parts: DeviceTensor[] = [];
    forEachSplit(e, label, outer.size, [{ tensor: x, name: 'x', unit: outer.stride }], (rg, [xs], i) => {
      const target = i === 0 ? out : e.empty(outShape);
      parts.push(target);
      run(xs, kept, withOuter(red, rg.count), m, (r / outer.size) * rg.count, alpha, target, label);
    }, { unitName: 'slice' });
    return sumParts(parts);
  }
  const perOuter = m / outer.size;
  const operands = [
    { tensor: x, name: 'x', unit: outer.stride },
    { tensor: out, name: 'out', unit: perOuter, output: true },
  ];
  forEachSplit(e, label, outer.size, operands, (rg, [xs, outs]) => {
    run(xs, withOuter(kept, rg.count), red, perOuter * rg.count, r, alpha, outs, label);
  }, { unitName: 'slice' });
  return out;
}

function run(x: DeviceTensor, kept: Dim[], red: Dim[], m: number, r: number, alpha: number, out: DeviceTensor, label: string): void {
  const e = x.engine;
  const parts = r <= REDUCE_CHUNK ? 1 : Math.ceil(r / REDUCE_CHUNK);
  const target = parts === 1 ? out : e.empty([m * parts]);
  // When the innermost dim is kept, neighbouring invocations should be neighbouring outputs (see the shader).
  const partsOuter = parts > 1 && m > 1 && kept[0].stride === 1;
  const pad = (v: number[], fill: number) => [...v, ...new Array<number>(MAX_GROUP_DIMS - v.length).fill(fill)];
  e.dispatch({
    shader: 'reduce',
    constants: { PARTS_OUTER: partsOuter },
    uniforms: [
      ...pad(kept.map((d) => d.size), 1),
      ...pad(kept.map((d) => d.stride), 0),
      ...pad(red.map((d) => d.size), 1),
      ...pad(red.map((d) => d.stride), 0),
      m,
      r,
      REDUCE_CHUNK,
      parts,
      f32(parts === 1 ? alpha : 1),
    ],
    bindings: [x, target],
    workgroups: e.grid(m * parts, WG),
    label: `${label} ${m}x${r}${parts > 1 ? ` (${parts} parts)` : ''}`,
  });
  if (parts > 1) {
    // The partials are a contiguous [m, parts] (or [parts, m]) array.
    const keptNext = m === 1 ? [] : [{ size: m, stride: partsOuter ? 1 : parts }];
    run(target, keptNext, [{ size: parts, stride: partsOuter ? m : 1 }], m, parts, alpha, out, label);
    target.dispose(); // safe: the pool only reuses it after the recorded work is submitted
  }
}

function reducedShape(shape: readonly number[], mask: boolean[], keepDims: boolean): number[] {
  return keepDims ? shape.map((d, i) => (mask[i] ? 1 : d)) : shape.filter((_, i) => !mask[i]);
}

/** Sum over `axes` (null = all, giving a 0-d tensor unless keepDims; negative axes allowed). */
export function sum(x: DeviceTensor, axes: number[] | null, keepDims = false): DeviceTensor {
  const mask = normalizeAxes('reduce.sum', x.shape, axes);
  return reduceAxes(x, mask, reducedShape(x.shape, mask, keepDims), 1, 'reduce.sum');
}

/** Mean over `axes` (null = all). The mean over zero elements is NaN, as in PyTorch. */
export function mean(x: DeviceTensor, axes: number[] | null, keepDims = false): DeviceTensor {
  const mask = normalizeAxes('reduce.mean', x.shape, axes);
  const count = x.shape.reduce((p, d, i) => (mask[i] ? p * d : p), 1);
  return reduceAxes(x, mask, reducedShape(x.shape, mask, keepDims), 1 / count, 'reduce.mean');
}

/**
 * Sums x down to `shape`, the shape of an operand that was broadcast to x.shape: over the leading extra
 * axes and over the axes where `shape` has 1 and x does not. The result has exactly `shape`.
 */
export function sumToShape(x: DeviceTensor, shape: readonly number[]): DeviceTensor {
  const xs = x.shape;
  const lead = xs.length - shape.length;
  const ok = lead >= 0 && shape.every((d, i) => d === xs[lead + i] || d === 1);
  if (!ok)
    throw new ShapeError(`reduce.sumToShape: shape ${shapeString(shape)} does not broadcast to ${shapeString(xs)}`);
  const mask = xs.map((d, i) => i < lead || (shape[i - lead] === 1 && d !== 1));
  return reduceAxes(x, mask, shape, 1, 'reduce.sumToShape');
}

export const reduceSumOp = defineOp<typeof sum>('reduce.sum');
reduceSumOp.register('chunked', sum, {
  description: 'contiguous chunks of <= 256 terms per invocation, then the same kernel over the partials',
});
export const reduceMeanOp = defineOp<typeof mean>('reduce.mean');
reduceMeanOp.register('chunked', mean, { description: 'reduce.sum scaled by 1/count in the last pass' });
export const reduceSumToShapeOp = defineOp<typeof sumToShape>('reduce.sumToShape');
reduceSumToShapeOp.register('chunked', sumToShape, { description: 'reduce.sum over the broadcast axes' });
