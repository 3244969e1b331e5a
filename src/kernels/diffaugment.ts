// DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", 2020):
// translation, cutout and colour (brightness, saturation, contrast) with their backward passes
// (shaders/diffaugment.wgsl), and the seeded per-sample parameter draws that feed them.
//
// Every op takes x [N,C,H,W] and a per-sample parameter table [N,k] (f32; integer parameters are
// stored exactly). The parameters are drawn on the CPU from a seeded Rng (src/util/rng.ts) with the
// ranges of the reference implementation (github.com/mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py);
// the caller keeps the table so the backward pass sees the same draw.
import { i32 } from '../gpu/engine.js';
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { Rng } from '../util/rng.js';
import { defineOp } from './registry.js';

const WG = 256;

/** Parameters per sample of each op, i.e. the k of its [N, k] table. */
export const PARAMS_PER_SAMPLE = {
  /** (dx, dy): integer shift along W and along H; y[i, j] = x[i - dy, j - dx]. */
  translation: 2,
  /** (x0, y0, x1, y1): half-open box x0 <= j < x1, y0 <= i < y1 that is zeroed (may cross the border). */
  cutout: 4,
  /** (brightness b, saturation s, contrast c). */
  color: 3,
} as const;

export type DiffAugmentPolicy = keyof typeof PARAMS_PER_SAMPLE;

function checkArgs(op: string, a: DeviceTensor, params: DeviceTensor, k: number): [number, number, number, number] {
  if (a.shape.length !== 4 || a.dtype !== 'f32')
    throw new ShapeError(`${op}: expected an f32 NCHW tensor, got ${a.dtype} ${shapeString(a.shape)}`);
  const n = a.shape[0];
  if (params.dtype !== 'f32' || params.shape.length !== 2 || params.shape[0] !== n || params.shape[1] !== k)
    throw new ShapeError(`${op}: parameters must be an f32 [${n}, ${k}] table (one row per sample), got ${params.dtype} ${shapeString(params.shape)}`);
  return a.shape as [number, number, number, number];
}

/** The translate and cutout passes: one invocation per element. */
function perElement(entry: 'translate' | 'cutout', op: string, a: DeviceTensor, params: DeviceTensor, shiftSign: 1 | -1): DeviceTensor {
  const [n, c, h, w] = checkArgs(op, a, params, PARAMS_PER_SAMPLE[entry === 'translate' ? 'translation' : 'cutout']);
  const e = a.engine;
  const out = e.empty(a.shape);
  e.dispatch({
    shader: 'diffaugment',
    entry,
    uniforms: [n, c, h, w, i32(shiftSign), 0],
    bindings: [out, a, params],
    workgroups: e.grid(a.size, WG),
    label: `${op} ${shapeString(a.shape)}`,
  });
  return out;
}

/** y[n,c,i,j] = x[n,c,i-dy,j-dx] where that pixel exists, else 0; shifts [N,2] = (dx, dy) per sample. */
export function translateForward(x: DeviceTensor, shifts: DeviceTensor): DeviceTensor {
  return perElement('translate', 'diffAugment.translate', x, shifts, 1);
}

/** The adjoint of translateForward: dy shifted back by (-dx, -dy), 0 where the source fell outside. */
export function translateBackward(dy: DeviceTensor, shifts: DeviceTensor): DeviceTensor {
  return perElement('translate', 'diffAugment.translateBackward', dy, shifts, -1);
}

/** x with the box of each sample set to 0; boxes [N,4] = (x0, y0, x1, y1), half-open. */
export function cutoutForward(x: DeviceTensor, boxes: DeviceTensor): DeviceTensor {
  return perElement('cutout', 'diffAugment.cutout', x, boxes, 1);
}

/** dx = dy with the forward's boxes set to 0 (cutout is a diagonal mask). */
export function cutoutBackward(dy: DeviceTensor, boxes: DeviceTensor): DeviceTensor {
  return perElement('cutout', 'diffAugment.cutoutBackward', dy, boxes, 1);
}

/** The mean of each sample over (C, H, W): [N,C,H,W] -> [N]. */
export function sampleMean(a: DeviceTensor): DeviceTensor {
  if (a.shape.length !== 4 || a.dtype !== 'f32')
    throw new ShapeError(`diffAugment.sampleMean: expected an f32 NCHW tensor, got ${a.dtype} ${shapeString(a.shape)}`);
  const [n, c, h, w] = a.shape;
  const e = a.engine;
  const m = e.empty([n]);
  e.dispatch({
    shader: 'diffaugment',
    entry: 'sample_mean',
    uniforms: [n, c, h, w, i32(1), 0],
    bindings: [m, a],
    workgroups: [Math.min(n, e.limits.maxComputeWorkgroupsPerDimension)],
    label: `diffAugment.sampleMean ${shapeString(a.shape)}`,
  });
  return m;
}

function color(op: string, a: DeviceTensor, params: DeviceTensor, withBrightness: boolean): DeviceTensor {
  const [n, c, h, w] = checkArgs(op, a, params, PARAMS_PER_SAMPLE.color);
  const e = a.engine;
  const out = e.empty(a.shape);
  if (a.size === 0) return out;
  const means = sampleMean(a);
  e.dispatch({
    shader: 'diffaugment',
    entry: 'color',
    uniforms: [n, c, h, w, i32(1), withBrightness ? 1 : 0],
    bindings: [out, a, params, means],
    workgroups: e.grid(n * h * w, WG),
    label: `${op} ${shapeString(a.shape)}`,
  });
  means.dispose();
  return out;
}

/**
 * Brightness, saturation and contrast per sample, params [N,3] = (b, s, c), in DiffAugment's order:
 * x + b, then (x - mean over C) s + mean over C, then (x - mean over C,H,W) c + mean over C,H,W.
 * s = 1 leaves saturation out (as for grayscale).
 */
export function colorForward(x: DeviceTensor, params: DeviceTensor): DeviceTensor {
  return color('diffAugment.color', x, params, true);
}

/** The adjoint of colorForward's linear part: dx = L(dy) (self-adjoint; for C = 1, c dy + (1 - c) mean(dy)). */
export function colorBackward(dy: DeviceTensor, params: DeviceTensor): DeviceTensor {
  return color('diffAugment.colorBackward', dy, params, false);
}

export const diffAugmentTranslateOp = defineOp<typeof translateForward>('diffAugment.translate');
diffAugmentTranslateOp.register('gather', translateForward, {
  description: 'one invocation per output element gathers x[i - dy, j - dx] or 0',
});
export const diffAugmentTranslateBackwardOp = defineOp<typeof translateBackward>('diffAugment.translateBackward');
diffAugmentTranslateBackwardOp.register('gather', translateBackward, {
  description: 'the adjoint: a gather with the shift negated',
});
export const diffAugmentCutoutOp = defineOp<typeof cutoutForward>('diffAugment.cutout');
diffAugmentCutoutOp.register('mask', cutoutForward, {
  description: 'one invocation per element; 0 inside the sample box',
});
export const diffAugmentCutoutBackwardOp = defineOp<typeof cutoutBackward>('diffAugment.cutoutBackward');
diffAugmentCutoutBackwardOp.register('mask', cutoutBackward, {
  description: 'the same box mask applied to dy',
});
export const diffAugmentColorOp = defineOp<typeof colorForward>('diffAugment.color');
diffAugmentColorOp.register('fused', colorForward, {
  description: 'sample means by a workgroup tree reduction, then one invocation per pixel: brightness, saturation, contrast fused',
});
export const diffAugmentColorBackwardOp = defineOp<typeof colorBackward>('diffAugment.colorBackward');
diffAugmentColorBackwardOp.register('fused', colorBackward, {
  description: 'the same fused pass on dy without the brightness term (the linear part is self-adjoint)',
});

// ------------------------------------------------------------------ seeded parameter draws

function checkShape(op: string, shape: readonly number[]): [number, number, number, number] {
  if (shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new ShapeError(`${op}: expected an NCHW shape, got ${shapeString(shape)}`);
  return shape as [number, number, number, number];
}

function checkRatio(op: string, ratio: number): void {
  if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`${op}: ratio ${ratio} is not in [0, 1]`);
}

/**
 * Shifts (dx, dy) per sample, uniform integers in [-rW, rW] x [-rH, rH] with r = round(ratio * size)
 * per axis (DiffAugment's rand_translation; ratio 1/8 by default).
 */
export function drawTranslation(rng: Rng, shape: readonly number[], ratio = 1 / 8): Float32Array {
  checkRatio('drawTranslation', ratio);
  const [n, , h, w] = checkShape('drawTranslation', shape);
  const rh = Math.round(ratio * h);
  const rw = Math.round(ratio * w);
  const out = new Float32Array(n * 2);
  for (let s = 0; s < n; s++) {
    out[2 * s] = rng.int(2 * rw + 1) - rw;
    out[2 * s + 1] = rng.int(2 * rh + 1) - rh;
  }
  return out;
}

/**
 * Boxes (x0, y0, x1, y1) per sample of side round(ratio * size) per axis (ratio 0.5 by default) at a
 * random centre, as DiffAugment's rand_cutout: the centre offset is uniform in [0, size + 1 - side % 2)
 * and the box starts side/2 (rounded down) before it, so it may be clipped at the border.
 */
export function drawCutout(rng: Rng, shape: readonly number[], ratio = 0.5): Float32Array {
  checkRatio('drawCutout', ratio);
  const [n, , h, w] = checkShape('drawCutout', shape);
  const sh = Math.round(ratio * h);
  const sw = Math.round(ratio * w);
  const out = new Float32Array(n * 4);
  for (let s = 0; s < n; s++) {
    const x0 = rng.int(w + 1 - (sw % 2)) - Math.floor(sw / 2);
    const y0 = rng.int(h + 1 - (sh % 2)) - Math.floor(sh / 2);
    out.set([x0, y0, x0 + sw, y0 + sh], 4 * s);
  }
  return out;
}

/**
 * (b, s, c) per sample: brightness b ~ U(-0.5, 0.5), saturation s ~ U(0, 2) for C = 3 (1, i.e. none,
 * otherwise: a channel mean means nothing for grayscale), contrast c ~ U(0.5, 1.5), as DiffAugment's
 * rand_brightness, rand_saturation, rand_contrast. Three draws per sample whatever C is.
 */
export function drawColor(rng: Rng, shape: readonly number[]): Float32Array {
  const [n, c] = checkShape('drawColor', shape);
  const out = new Float32Array(n * 3);
  for (let s = 0; s < n; s++) {
    const b = rng.uniform(-0.5, 0.5);
    const sat = rng.uniform(0, 2);
    const con = rng.uniform(0.5, 1.5);
    out.set([b, c === 3 ? sat : 1, con], 3 * s);
  }
  return out;
}

export interface DiffAugmentPlanOptions {
  /** The ops, applied in this order. Default ['color', 'translation', 'cutout']. */
  policy?: readonly DiffAugmentPolicy[];
  /** Seed of the parameter draws, an integer in [0, 2^32). */
  seed: number;
  /** Translation range as a fraction of the image size (default 1/8). */
  translationRatio?: number;
  /** Cutout side as a fraction of the image size (default 0.5). */
  cutoutRatio?: number;
}

export const DEFAULT_POLICY: readonly DiffAugmentPolicy[] = ['color', 'translation', 'cutout'];

/**
 * The ops and per-sample parameter tables that diffAugment applies to a batch of `shape` for a seed:
 * one Rng(seed) feeds the draws of the ops in policy order. Same seed and shape, same plan.
 */
export function diffAugmentPlan(
  shape: readonly number[],
  options: DiffAugmentPlanOptions,
): { op: DiffAugmentPolicy; params: Float32Array }[] {
  const { seed } = options;
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new RangeError(`diffAugment: seed ${seed} is not an integer in [0, 2^32)`);
  const policy = options.policy ?? DEFAULT_POLICY;
  for (const op of policy)
    if (!(op in PARAMS_PER_SAMPLE))
      throw new RangeError(`diffAugment: unknown policy '${op}' (known: ${Object.keys(PARAMS_PER_SAMPLE).join(', ')})`);
  const rng = new Rng(seed);
  return policy.map((op) => ({
    op,
    params:
      op === 'translation'
        ? drawTranslation(rng, shape, options.translationRatio)
        : op === 'cutout'
          ? drawCutout(rng, shape, options.cutoutRatio)
          : drawColor(rng, shape),
  }));
}
