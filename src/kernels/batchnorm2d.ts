// Batch normalisation over NCHW tensors (shaders/batchnorm2d.wgsl): training forward (batch
// statistics, running statistics updated in place), eval forward, and both backward passes.
//
// Per-channel reductions run as a partial pass (invocation (c, t) reduces one share of channel c)
// followed by a combine pass (one invocation per channel), with no atomics or workgroup barriers.
// Two variants, with the same shader and different uniforms (see the shader's header):
//   'chunked'     (preferred on lavapipe): each partial reduces a contiguous run of a channel; the
//                 elementwise passes give each invocation 16 consecutive elements (few heavy
//                 invocations suit lavapipe's SIMD-over-invocations execution);
//   'interleaved' (preferred on GPUs): partial t takes every `parts`-th element and the elementwise
//                 passes one element per invocation, so neighbouring invocations read neighbouring
//                 addresses (coalesced loads).
// The batch statistics use the two-pass algorithm (on shifted values) per share and Chan's merge, so
// the mean and variance stay accurate for large m and for means far from zero.
// A batch over one storage binding runs in ranges of images (src/kernels/batch-split.ts): the partial
// reductions and elementwise passes per range, each range's partials into its own slots of one buffer,
// and the combine passes once over all of them.
import type { Engine } from '../gpu/engine.js';
import { defineGeneratedLib } from '../gpu/shaders.js';
import { UniformLayout } from '../gpu/uniform-layout.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { defineOp } from './registry.js';
import { forEachSplit, splitRanges, type SplitOperand } from './batch-split.js';

export interface BatchNormParams {
  momentum: number;
  eps: number;
}

export type BatchNormVariant = 'chunked' | 'interleaved';

/**
 * Elements per invocation of the elementwise passes (normalize, grad_input), per variant. lavapipe
 * runs invocations as SIMD lanes with a per-invocation cost (index divisions, loop setup): 16
 * consecutive elements per invocation ran ~3x faster than 4 on a [32,32,112,112] tensor. On GPUs one
 * element per invocation keeps neighbouring invocations on neighbouring addresses.
 */
const ELEMS: Record<BatchNormVariant, number> = { chunked: 16, interleaved: 1 };

const WG = 64; // workgroup size of every entry point in batchnorm2d.wgsl
/** Elements one partial reduction aims to cover, and the most partials per channel. */
const TARGET_SHARE = 256;
const MAX_PARTS = 256;

const sh = (t: DeviceTensor): string => JSON.stringify(t.shape);

/** Checks x [N,C,H,W] (f32) and each per-channel tensor [C]; returns the dimensions. */
function dims(op: string, x: DeviceTensor, perChannel: Record<string, DeviceTensor>): { n: number; c: number; hw: number } {
  if (x.shape.length !== 4) throw new ShapeError(`${op}: x must be [N, C, H, W], got ${sh(x)}`);
  if (x.dtype !== 'f32') throw new ShapeError(`${op}: x must be f32, got ${x.dtype}`);
  const [n, c, h, w] = x.shape;
  for (const [name, t] of Object.entries(perChannel)) {
    if (t.size !== c || t.shape.length !== 1 || t.dtype !== 'f32')
      throw new ShapeError(`${op}: ${name} must be an f32 tensor of shape [${c}] for x ${sh(x)}, got ${sh(t)} (${t.dtype})`);
  }
  return { n, c, hw: h * w };
}

function sameShape(op: string, x: DeviceTensor, dy: DeviceTensor): void {
  if (dy.shape.length !== x.shape.length || dy.shape.some((d, i) => d !== x.shape[i]))
    throw new ShapeError(`${op}: dy ${sh(dy)} does not match x ${sh(x)}`);
}

/** `Params` of batchnorm2d.wgsl (through `//! import generated:batchnorm2d_params`). */
export const BN_PARAMS = new UniformLayout('Params', [
  { name: 'hw', type: 'u32', doc: 'H * W' },
  { name: 'channels', type: 'u32', doc: 'C' },
  { name: 'm', type: 'u32', doc: 'N * H * W, elements per channel' },
  { name: 'parts', type: 'u32', doc: 'partial reductions per channel' },
  { name: 'chunk', type: 'u32', doc: 'most elements one partial covers' },
  { name: 'start_mul', type: 'u32', doc: 'first element of partial t is j = t * start_mul' },
  { name: 'step', type: 'u32', doc: 'distance in j between consecutive elements of one partial' },
  { name: 'step_n', type: 'u32', doc: 'step / hw' },
  { name: 'step_s', type: 'u32', doc: 'step % hw' },
  { name: 'planes', type: 'u32', doc: 'N * C' },
  { name: 'chunks_per_plane', type: 'u32', doc: 'ceil(hw / elems)' },
  { name: 'elems', type: 'u32', doc: 'elementwise passes: consecutive elements of one plane per invocation' },
  { name: 'eps', type: 'f32' },
  { name: 'momentum', type: 'f32' },
  { name: 'inv_m', type: 'f32', doc: '1 / m_total' },
  // A batch over one storage binding runs in ranges of images, each with its own m, parts and chunk;
  // every range's partials go to one buffer, [C, parts_total] entries, this range's from part_offset on.
  { name: 'part_offset', type: 'u32', doc: "this range's first partial slot" },
  { name: 'parts_total', type: 'u32', doc: 'partials per channel over the whole batch' },
  { name: 'm_total', type: 'u32', doc: 'elements per channel over the whole batch' },
] as const);

// (with the workgroup size, so that it too is written once)
defineGeneratedLib('batchnorm2d_params', 'src/kernels/batchnorm2d.ts', `${BN_PARAMS.wgsl()}\nconst WG: u32 = ${WG}u;\n`);

/** Partial reductions per channel for m elements per channel. */
const partsFor = (m: number) => Math.max(1, Math.min(MAX_PARTS, Math.ceil(m / TARGET_SHARE)));

/** Where a range's partials go among those of the whole batch (see the shader's part_offset). */
interface PartialSlots {
  mTotal: number;
  partOffset: number;
  partsTotal: number;
}

/**
 * The uniform block of batchnorm2d.wgsl (`Params`) for a range of d.n images and a variant; `slots`
 * places its partials among those of the whole batch (default: the range is the whole batch).
 */
function params(
  d: { n: number; c: number; hw: number },
  variant: BatchNormVariant,
  eps: number,
  momentum = 0,
  slots?: PartialSlots,
): { uniforms: Uint8Array; parts: number; partials: number; elementGrid: number } {
  const m = d.n * d.hw;
  const parts = partsFor(m);
  const mTotal = slots?.mTotal ?? m;
  const chunk = Math.max(1, Math.ceil(m / parts));
  const startMul = variant === 'chunked' ? chunk : 1;
  const step = variant === 'chunked' ? 1 : parts;
  const hw = Math.max(1, d.hw);
  const elems = ELEMS[variant];
  const chunksPerPlane = Math.ceil(d.hw / elems);
  const uniforms = BN_PARAMS.pack({
    hw,
    channels: d.c,
    m,
    parts,
    chunk,
    startMul,
    step,
    stepN: Math.floor(step / hw),
    stepS: step % hw,
    planes: d.n * d.c,
    chunksPerPlane,
    elems,
    eps,
    momentum,
    invM: mTotal > 0 ? 1 / mTotal : 0,
    partOffset: slots?.partOffset ?? 0,
    partsTotal: slots?.partsTotal ?? parts,
    mTotal,
  });
  return { uniforms, parts, partials: d.c * parts, elementGrid: d.n * d.c * chunksPerPlane };
}

/**
 * The ranges of images a batch runs in (one when x fits a binding; x, y, dy and dx have the same size per
 * image, so the same ranges serve every pass), each with its partial slots and uniforms.
 */
function batchRanges(
  label: string,
  x: DeviceTensor,
  d: { n: number; c: number; hw: number },
  variant: BatchNormVariant,
  eps: number,
  momentum = 0,
): { operand: SplitOperand; ranges: ReturnType<typeof params>[]; whole: ReturnType<typeof params> } {
  const operand: SplitOperand = { tensor: x, name: 'x', unit: d.c * d.hw };
  const split = splitRanges(x.engine, label, d.n, [operand]);
  const mTotal = d.n * d.hw;
  const partsTotal = split.reduce((t, r) => t + partsFor(r.count * d.hw), 0);
  let partOffset = 0;
  const ranges = split.map((r) => {
    const u = params({ ...d, n: r.count }, variant, eps, momentum, { mTotal, partOffset, partsTotal });
    partOffset += u.parts;
    return u;
  });
  // The combine passes' uniforms: the whole batch (parts = parts_total).
  const whole = split.length === 1 ? ranges[0] : params(d, variant, eps, momentum, { mTotal, partOffset: 0, partsTotal });
  return { operand, ranges, whole: { ...whole, partials: d.c * partsTotal } };
}

/** The per-image operands (x's shape) of a pass. */
const sameShapeOperands = (unit: number, ...ts: [DeviceTensor, string, boolean?][]): SplitOperand[] =>
  ts.map(([tensor, name, output]) => ({ tensor, name, unit, output }));

function checkEps(op: string, eps: number): void {
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`${op}: eps = ${eps} must be a finite number >= 0`);
}

// ---------------------------------------------------------------- training forward

function trainForward(variant: BatchNormVariant) {
  return function batchNorm2dTrainForwardVariant(
    x: DeviceTensor,
    gamma: DeviceTensor,
    beta: DeviceTensor,
    runningMean: DeviceTensor,
    runningVar: DeviceTensor,
    bn: BatchNormParams,
  ): { y: DeviceTensor; mean: DeviceTensor; invStd: DeviceTensor } {
    const op = 'batchNorm2d.trainForward';
    const d = dims(op, x, { gamma, beta, runningMean, runningVar });
    checkEps(op, bn.eps);
    if (d.n * d.hw === 0 && d.c > 0)
      throw new ShapeError(`${op}: x ${sh(x)} has no elements per channel to take statistics over`);
    const e = x.engine;
    const label = `${op} ${sh(x)} (${variant})`;
    const { operand, ranges, whole } = batchRanges(label, x, d, variant, bn.eps, bn.momentum);
    const partials = e.empty([whole.partials * 3]);
    forEachSplit(e, label, d.n, [operand], (_r, [xs], i) => {
      const u = ranges[i];
      e.dispatch({
        shader: 'batchnorm2d',
        entry: 'stats_partial',
        uniforms: u.uniforms,
        bindings: [xs, partials],
        workgroups: e.grid(u.partials, WG),
        label: `${label} stats_partial`,
      });
    });
    const mean = e.empty([d.c]);
    const invStd = e.empty([d.c]);
    e.dispatch({
      shader: 'batchnorm2d',
      entry: 'stats_combine',
      uniforms: whole.uniforms,
      bindings: [partials, mean, invStd, runningMean, runningVar],
      workgroups: e.grid(d.c, WG),
      label: `${label} stats_combine`,
    });
    partials.dispose();
    const y = e.empty(x.shape);
    forEachSplit(e, label, d.n, sameShapeOperands(operand.unit, [x, 'x'], [y, 'y', true]), (_r, [xs, ys], i) => {
      e.dispatch({
        shader: 'batchnorm2d',
        entry: 'normalize',
        constants: { SPREAD_IS_VAR: false },
        uniforms: ranges[i].uniforms,
        bindings: [xs, ys, mean, invStd, gamma, beta],
        workgroups: e.grid(ranges[i].elementGrid, WG),
        label: `${label} normalize`,
      });
    });
    return { y, mean, invStd };
  };
}

// ---------------------------------------------------------------- eval forward

function evalForward(variant: BatchNormVariant) {
  return function batchNorm2dEvalForwardVariant(
    x: DeviceTensor,
    gamma: DeviceTensor,
    beta: DeviceTensor,
    runningMean: DeviceTensor,
    runningVar: DeviceTensor,
    eps: number,
  ): DeviceTensor {
    const op = 'batchNorm2d.evalForward';
    const d = dims(op, x, { gamma, beta, runningMean, runningVar });
    checkEps(op, eps);
    const e = x.engine;
    const label = `${op} ${sh(x)} (${variant})`;
    const { operand, ranges } = batchRanges(label, x, d, variant, eps);
    const y = e.empty(x.shape);
    forEachSplit(e, label, d.n, sameShapeOperands(operand.unit, [x, 'x'], [y, 'y', true]), (_r, [xs, ys], i) => {
      e.dispatch({
        shader: 'batchnorm2d',
        entry: 'normalize',
        constants: { SPREAD_IS_VAR: true },
        uniforms: ranges[i].uniforms,
        bindings: [xs, ys, runningMean, runningVar, gamma, beta],
        workgroups: e.grid(ranges[i].elementGrid, WG),
        label,
      });
    });
    return y;
  };
}

// ---------------------------------------------------------------- backward

/** grad_partial + grad_combine: dgamma and dbeta (and, in eval mode, dx written by grad_partial). */
function paramGrads(
  e: Engine,
  x: DeviceTensor,
  dy: DeviceTensor,
  gamma: DeviceTensor,
  center: DeviceTensor,
  spread: DeviceTensor,
  dx: DeviceTensor,
  b: ReturnType<typeof batchRanges>,
  c: number,
  evalMode: boolean,
  label: string,
): { dgamma: DeviceTensor; dbeta: DeviceTensor } {
  const partials = e.empty([b.whole.partials * 2]);
  // In training mode grad_partial does not write dx (grad_input does, afterwards).
  const operands = sameShapeOperands(b.operand.unit, [x, 'x'], [dy, 'dy'], [dx, 'dx', evalMode]);
  forEachSplit(e, label, x.shape[0], operands, (_r, [xs, dys, dxs], i) => {
    const u = b.ranges[i];
    e.dispatch({
      shader: 'batchnorm2d',
      entry: 'grad_partial',
      constants: { SPREAD_IS_VAR: evalMode },
      uniforms: u.uniforms,
      bindings: [xs, dys, center, spread, gamma, dxs, partials],
      workgroups: e.grid(u.partials, WG),
      label: `${label} grad_partial`,
    });
  });
  const dgamma = e.empty([c]);
  const dbeta = e.empty([c]);
  e.dispatch({
    shader: 'batchnorm2d',
    entry: 'grad_combine',
    constants: { SPREAD_IS_VAR: evalMode },
    uniforms: b.whole.uniforms,
    bindings: [partials, dgamma, dbeta, spread],
    workgroups: e.grid(c, WG),
    label: `${label} grad_combine`,
  });
  partials.dispose();
  return { dgamma, dbeta };
}

function trainBackward(variant: BatchNormVariant) {
  return function batchNorm2dBackwardVariant(
    x: DeviceTensor,
    dy: DeviceTensor,
    gamma: DeviceTensor,
    mean: DeviceTensor,
    invStd: DeviceTensor,
  ): { dx: DeviceTensor; dgamma: DeviceTensor; dbeta: DeviceTensor } {
    const op = 'batchNorm2d.backward';
    const d = dims(op, x, { gamma, mean, invStd });
    sameShape(op, x, dy);
    const e = x.engine;
    const label = `${op} ${sh(x)} (${variant})`;
    const b = batchRanges(label, x, d, variant, 0);
    const dx = e.empty(x.shape);
    const { dgamma, dbeta } = paramGrads(e, x, dy, gamma, mean, invStd, dx, b, d.c, false, label);
    const operands = sameShapeOperands(b.operand.unit, [x, 'x'], [dy, 'dy'], [dx, 'dx', true]);
    forEachSplit(e, label, d.n, operands, (_r, [xs, dys, dxs], i) => {
      e.dispatch({
        shader: 'batchnorm2d',
        entry: 'grad_input',
        constants: { SPREAD_IS_VAR: false },
        uniforms: b.ranges[i].uniforms,
        bindings: [xs, dys, mean, invStd, gamma, dxs, dgamma, dbeta],
        workgroups: e.grid(b.ranges[i].elementGrid, WG),
        label: `${label} grad_input`,
      });
    });
    return { dx, dgamma, dbeta };
  };
}

function evalBackward(variant: BatchNormVariant) {
  return function batchNorm2dEvalBackwardVariant(
    x: DeviceTensor,
    dy: DeviceTensor,
    gamma: DeviceTensor,
    runningMean: DeviceTensor,
    runningVar: DeviceTensor,
    eps: number,
  ): { dx: DeviceTensor; dgamma: DeviceTensor; dbeta: DeviceTensor } {
    const op = 'batchNorm2d.evalBackward';
    const d = dims(op, x, { gamma, runningMean, runningVar });
    sameShape(op, x, dy);
    checkEps(op, eps);
    const e = x.engine;
    const label = `${op} ${sh(x)} (${variant})`;
    const b = batchRanges(label, x, d, variant, eps);
    const dx = e.empty(x.shape);
    const { dgamma, dbeta } = paramGrads(e, x, dy, gamma, runningMean, runningVar, dx, b, d.c, true, label);
    return { dx, dgamma, dbeta };
  };
}

// ---------------------------------------------------------------- registration and public entry points

const VARIANTS: { name: BatchNormVariant; description: string; preferredOn: ('software' | 'hardware')[] }[] = [
  {
    name: 'chunked',
    description:
      'partial reductions over contiguous runs of each channel, then a per-channel combine; 16 elements per invocation in elementwise passes',
    preferredOn: ['software'],
  },
  {
    name: 'interleaved',
    description:
      'partial reductions over strided elements (neighbouring invocations read neighbouring addresses), then a per-channel combine; 1 element per invocation in elementwise passes',
    preferredOn: ['hardware'],
  },
];

export const batchNorm2dTrainForwardOp = defineOp<typeof batchNorm2dTrainForward>('batchNorm2d.trainForward');
export const batchNorm2dBackwardOp = defineOp<typeof batchNorm2dBackward>('batchNorm2d.backward');
export const batchNorm2dEvalBackwardOp = defineOp<typeof batchNorm2dEvalBackward>('batchNorm2d.evalBackward');
export const batchNorm2dEvalForwardOp = defineOp<typeof batchNorm2dEvalForward>('batchNorm2d.evalForward');
for (const v of VARIANTS) {
  const opts = { description: v.description, preferredOn: v.preferredOn };
  batchNorm2dTrainForwardOp.register(v.name, trainForward(v.name), opts);
  batchNorm2dBackwardOp.register(v.name, trainBackward(v.name), opts);
  batchNorm2dEvalBackwardOp.register(v.name, evalBackward(v.name), opts);
  batchNorm2dEvalForwardOp.register(v.name, evalForward(v.name), {
    description: `elementwise, ${ELEMS[v.name]} consecutive element(s) per invocation`,
    preferredOn: v.preferredOn,
  });
}

/**
 * Training forward: per-channel batch statistics over (N, H, W), y = gamma (x - mean) / sqrt(var + eps) + beta
 * with the biased variance; runningMean/runningVar updated in place (runningVar with the unbiased variance).
 * Returns y and the per-channel mean and 1/sqrt(var + eps) for the backward pass.
 */
export function batchNorm2dTrainForward(
  x: DeviceTensor,
  gamma: DeviceTensor,
  beta: DeviceTensor,
  runningMean: DeviceTensor,
  runningVar: DeviceTensor,
  p: BatchNormParams,
): { y: DeviceTensor; mean: DeviceTensor; invStd: DeviceTensor } {
  return batchNorm2dTrainForwardOp.get(x.engine)(x, gamma, beta, runningMean, runningVar, p);
}

/** Eval forward with the running statistics: y = gamma (x - runningMean) / sqrt(runningVar + eps) + beta. */
export function batchNorm2dEvalForward(
  x: DeviceTensor,
  gamma: DeviceTensor,
  beta: DeviceTensor,
  runningMean: DeviceTensor,
  runningVar: DeviceTensor,
  eps: number,
): DeviceTensor {
  return batchNorm2dEvalForwardOp.get(x.engine)(x, gamma, beta, runningMean, runningVar, eps);
}

/** Training-mode backward (batch statistics, as saved by batchNorm2dTrainForward). */
export function batchNorm2dBackward(
  x: DeviceTensor,
  dy: DeviceTensor,
  gamma: DeviceTensor,
  mean: DeviceTensor,
  invStd: DeviceTensor,
): { dx: DeviceTensor; dgamma: DeviceTensor; dbeta: DeviceTensor } {
  return batchNorm2dBackwardOp.get(x.engine)(x, dy, gamma, mean, invStd);
}

/** Eval-mode backward (running statistics are constants): dx = dy gamma / sqrt(runningVar + eps). */
export function batchNorm2dEvalBackward(
  x: DeviceTensor,
  dy: DeviceTensor,
  gamma: DeviceTensor,
  runningMean: DeviceTensor,
  runningVar: DeviceTensor,
  eps: number,
): { dx: DeviceTensor; dgamma: DeviceTensor; dbeta: DeviceTensor } {
  return batchNorm2dEvalBackwardOp.get(x.engine)(x, dy, gamma, runningMean, runningVar, eps);
}
