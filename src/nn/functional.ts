// F: differentiable ops, named after torch.nn.functional (camelCase, NCHW).
//
// Each op runs its forward kernel and records, right beside it, the local derivative: a closure that
// maps the output gradient dy to the input gradients. Kernels are looked up through their op
// descriptors (src/kernels/registry.ts), so `kernels.use(op, variant)` or an op's `variant` option
// picks the implementation; the descriptors run each op's argument check, so F checks only what is
// its own (engines, options, reshaping).
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { shapeString, sizeOf } from '../gpu/device-tensor.js';
import { InvalidArgumentError, ShapeError, WgslNnError } from '../gpu/errors.js';
import '../kernels/index.js';
import { activationBackwardOp, activationForwardOp, type Activation, type ActivationGate } from '../kernels/activation.js';
import { conv2dBackwardInputOp, conv2dBackwardWeightOp, conv2dForwardOp, type Conv2dParams } from '../kernels/conv2d.js';
import { convTranspose2dBackwardInputOp, convTranspose2dBackwardWeightOp, convTranspose2dForwardOp } from '../kernels/conv-transpose2d.js';
import { linearBackwardInputOp, linearBackwardWeightOp, linearForwardOp } from '../kernels/dense.js';
import { biasBackwardOp } from '../kernels/bias-grad.js';
import { maxPool2dBackwardOp, maxPool2dForwardOp } from '../kernels/maxpool2d.js';
import { upsampleNearest2dBackwardOp, upsampleNearest2dForwardOp } from '../kernels/upsample.js';
import { softmaxBackwardOp, softmaxForwardOp } from '../kernels/softmax.js';
import {
  bceBackwardOp,
  bceForwardOp,
  bceWithLogitsBackwardOp,
  bceWithLogitsForwardOp,
  crossEntropyBackwardOp,
  crossEntropyForwardOp,
} from '../kernels/loss.js';
import { elementwiseBinaryOp, elementwiseScaleOp, type BinaryOp } from '../kernels/elementwise.js';
import { reduceMeanOp, reduceSumOp, reduceSumToShapeOp } from '../kernels/reduce.js';
import { batchNorm2dBackwardOp, batchNorm2dEvalBackwardOp, batchNorm2dEvalForwardOp, batchNorm2dTrainForwardOp } from '../kernels/batchnorm2d.js';
import { dropoutBackwardOp, dropoutForwardOp } from '../kernels/dropout.js';
import { spectralNormBackwardOp, spectralNormForwardOp } from '../kernels/spectral-norm.js';
import {
  diffAugmentColorBackwardOp,
  diffAugmentColorOp,
  diffAugmentCutoutBackwardOp,
  diffAugmentCutoutOp,
  diffAugmentTranslateBackwardOp,
  diffAugmentTranslateOp,
  diffAugmentPlan,
  PARAMS_PER_SAMPLE,
  type DiffAugmentPolicy,
} from '../kernels/diffaugment.js';
import { record, Tensor } from './tensor.js';
import { globalRng } from './seed.js';

type Pair = number | [number, number];
const pair = (v: Pair | undefined, dflt: number): [number, number] =>
  v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];

/**
 * Tensors of two engines cannot meet in one kernel. Checked before the kernel allocates its output
 * (engine.dispatch would refuse the foreign buffer too, but after that allocation).
 */
function sameEngine(op: string, ...tensors: (Tensor | null | undefined)[]): void {
  const e = tensors[0]!.engine;
  for (const t of tensors)
    if (t && t.engine !== e) throw new InvalidArgumentError(`${op}: a tensor of shape ${shapeString(t.shape)} belongs to another engine than ${shapeString(tensors[0]!.shape)}`);
}

/** For ops whose kernels take no tensor of this rank (the kernel ops check the others themselves). */
function expectDims(x: Tensor, dims: number, op: string, what = 'input'): void {
  if (x.shape.length !== dims)
    throw new ShapeError(`${op}: ${what} must be ${dims}-D, got ${shapeString(x.shape)}`);
}

/**
 * How the backward passes of a layer with a fused activation (conv2d, convTranspose2d, linear) get
 * dz = dy * act'(y): 'folded', each pass (dx, dw, db) reads dy through the activation's derivative
 * (an ActivationGate: no pass of its own, but each of them also reads y); 'separate', one
 * activation-backward pass writes dz for them to read; 'auto' (the default), folded on real GPUs, where
 * the separate pass is a dispatch and three trips through memory of the whole tensor while the extra
 * reads of y hit the caches (not yet measured: no GPU was available), and separate on software
 * adapters, where each storage load inside a GEMM is emulated per lane: there the fold made single
 * layers' backward 1-51 % slower (bench/activation-fold.ts, bench/results/*.activation-fold.md).
 * The same gradients either way, up to float rounding (tested).
 */
export type ActivationBackward = 'auto' | 'folded' | 'separate';
let activationBackwardMode: ActivationBackward = 'auto';

/** Sets how fused activations are differentiated (see ActivationBackward); returns the previous mode. */
export function setActivationBackward(mode: ActivationBackward): ActivationBackward {
  if (mode !== 'auto' && mode !== 'folded' && mode !== 'separate')
    throw new InvalidArgumentError(`setActivationBackward: mode must be 'auto', 'folded' or 'separate', got ${JSON.stringify(mode)}`);
  const previous = activationBackwardMode;
  activationBackwardMode = mode;
  return previous;
}

/**
 * dy as the backward passes of a layer with fused activation `a` read it: `dz` with no gate (dy itself
 * without an activation; dy * act'(y) computed by its own pass, `owned`), or dy with the `gate` that the
 * passes fold into their reads.
 */
function throughActivation(y: DeviceTensor, dy: DeviceTensor, a: Activation | undefined, slope: number): { dz: DeviceTensor; owned: boolean; gate?: ActivationGate } {
  if (!a || a === 'none') return { dz: dy, owned: false };
  const fold = activationBackwardMode === 'auto' ? !y.engine.info.software : activationBackwardMode === 'folded';
  if (fold) return { dz: dy, owned: false, gate: { y, activation: a, slope } };
  return { dz: activationBackwardOp.get(y.engine)(y, dy, a, slope), owned: true };
}

export interface ConvOptions {
  stride?: Pair;
  padding?: Pair;
  /** Fused epilogue (an extension of torch's signature): the activation applied to the output. */
  activation?: Activation;
  /** Leaky ReLU's negative slope for a fused 'leakyRelu'. */
  slope?: number;
  /**
   * Kernel variant of the forward for this call (see conv2dForwardOp.variants()); the backward ops use
   * their variant of the same name where they have one, else their automatic choice.
   */
  variant?: string;
}

// ------------------------------------------------------------------ convolution and dense

/** y = conv2d(x, w) + b.  x [N,C,H,W], w [O,C,kH,kW], b [O]. */
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, options: ConvOptions = {}): Tensor {
  sameEngine('conv2d', x, w, b);
  const p: Conv2dParams = { stride: pair(options.stride, 1), padding: pair(options.padding, 0) };
  const slope = options.slope ?? 0.01;
  const e = x.engine;
  const y = conv2dForwardOp.get(e, options.variant)(x.value, w.value, b?.value ?? null, {
    ...p,
    activation: options.activation,
    slope,
  });
  // d/dx: transposed convolution of dz with w; d/dw: correlation of x with dz; d/db: sum of dz.
  return record('conv2d', b ? [x, w, b] : [x, w], y, (dy) => {
    const { dz, owned, gate } = throughActivation(y, dy, options.activation, slope);
    const dx = x.requiresGrad ? conv2dBackwardInputOp.getMatching(e, options.variant)(dz, w.value, x.shape, { ...p, gate }) : null;
    const dw = w.requiresGrad ? conv2dBackwardWeightOp.getMatching(e, options.variant)(x.value, dz, w.shape, { ...p, gate }) : null;
    const db = b?.requiresGrad ? biasBackwardOp.getMatching(e, options.variant)(dz, gate) : null;
    if (owned) dz.dispose();
    return [dx, dw, db];
  });
}

/** Transposed convolution.  x [N,Cin,H,W], w [Cin,Cout,kH,kW] (PyTorch's layout), b [Cout]. */
export function convTranspose2d(x: Tensor, w: Tensor, b: Tensor | null = null, options: ConvOptions = {}): Tensor {
  sameEngine('convTranspose2d', x, w, b);
  const p: Conv2dParams = { stride: pair(options.stride, 1), padding: pair(options.padding, 0) };
  const slope = options.slope ?? 0.01;
  const e = x.engine;
  const y = convTranspose2dForwardOp.get(e, options.variant)(x.value, w.value, b?.value ?? null, {
    ...p,
    activation: options.activation,
    slope,
  });
  // d/dx: a plain convolution of dz with w; d/dw: correlation of dz with x; d/db: sum of dz.
  return record('convTranspose2d', b ? [x, w, b] : [x, w], y, (dy) => {
    const { dz, owned, gate } = throughActivation(y, dy, options.activation, slope);
    const dx = x.requiresGrad ? convTranspose2dBackwardInputOp.getMatching(e, options.variant)(dz, w.value, x.shape, { ...p, gate }) : null;
    const dw = w.requiresGrad ? convTranspose2dBackwardWeightOp.getMatching(e, options.variant)(x.value, dz, w.shape, { ...p, gate }) : null;
    const db = b?.requiresGrad ? biasBackwardOp.getMatching(e, options.variant)(dz, gate) : null;
    if (owned) dz.dispose();
    return [dx, dw, db];
  });
}

/** y = x wᵀ + b.  x [N,in] (or [..., in]), w [out,in], b [out]. */
export function linear(
  x: Tensor,
  w: Tensor,
  b: Tensor | null = null,
  options: { activation?: Activation; slope?: number; variant?: string } = {},
): Tensor {
  sameEngine('linear', x, w, b);
  if (x.shape.length === 0) throw new ShapeError(`linear: input must have a last dimension of in_features, got a 0-d tensor`);
  // Leading dimensions are flattened into rows here; the kernel op checks the [N, in] x [out, in] shapes.
  if (x.shape.length !== 2) {
    const lead = x.shape.slice(0, -1);
    const inF = x.shape[x.shape.length - 1];
    if (w.shape.length !== 2 || w.shape[1] !== inF)
      throw new ShapeError(`linear: input ${shapeString(x.shape)} does not end in in_features=${w.shape[1]} of weight ${shapeString(w.shape)}`);
    const y2 = linear(reshape(x, [sizeOf(lead), inF]), w, b, options);
    return reshape(y2, [...lead, w.shape[0]]);
  }
  const slope = options.slope ?? 0.01;
  const e = x.engine;
  const y = linearForwardOp.get(e, options.variant)(x.value, w.value, b?.value ?? null, {
    activation: options.activation,
    slope,
  });
  // d/dx = dz w;  d/dw = dzᵀ x;  d/db = column sums of dz.
  return record('linear', b ? [x, w, b] : [x, w], y, (dy) => {
    const { dz, owned, gate } = throughActivation(y, dy, options.activation, slope);
    const dx = x.requiresGrad ? linearBackwardInputOp.getMatching(e, options.variant)(dz, w.value, { gate }) : null;
    const dw = w.requiresGrad ? linearBackwardWeightOp.getMatching(e, options.variant)(x.value, dz, { gate }) : null;
    const db = b?.requiresGrad ? biasBackwardOp.getMatching(e, options.variant)(dz, gate) : null;
    if (owned) dz.dispose();
    return [dx, dw, db];
  });
}

/**
 * Max pooling (floor mode, no padding). With `relu`, relu(maxPool2d(x)) = maxPool2d(relu(x)) in one
 * kernel each way: the ReLU's forward and backward run on the pooled map, folded into the pool's passes.
 */
export function maxPool2d(x: Tensor, options: { kernelSize: Pair; stride?: Pair; relu?: boolean }): Tensor {
  const p = { kernel: pair(options.kernelSize, 2), stride: pair(options.stride ?? options.kernelSize, 2), relu: !!options.relu };
  const e = x.engine;
  const { y, argmax } = maxPool2dForwardOp.get(e)(x.value, p);
  // d/dx: dy routed to the arg-max of each window (summed where windows overlap); with relu, only where y > 0.
  return record('maxPool2d', [x], y, (dy) => [maxPool2dBackwardOp.get(e)(dy, argmax, x.shape, p, p.relu ? y : undefined)], [argmax]);
}

/** Nearest-neighbour upsampling by an integer factor (torch.nn.Upsample(scale_factor, mode='nearest')). */
export function upsampleNearest2d(x: Tensor, scaleFactor: number): Tensor {
  const e = x.engine;
  const y = upsampleNearest2dForwardOp.get(e)(x.value, scaleFactor);
  // d/dx: each input pixel was copied to an s x s block, so its gradient is that block's sum of dy.
  return record('upsampleNearest2d', [x], y, (dy) => [upsampleNearest2dBackwardOp.get(e)(dy, x.shape, scaleFactor)]);
}

// ------------------------------------------------------------------ activations

function activation(name: Activation, x: Tensor, slope = 0.01): Tensor {
  // The activation kernels do not check dtypes: an i32 tensor would be read as float bits.
  if (x.dtype !== 'f32') throw new ShapeError(`${name}: expected an f32 tensor, got ${x.dtype} ${shapeString(x.shape)}`);
  if (name === 'leakyRelu' && !Number.isFinite(slope)) throw new InvalidArgumentError(`leakyRelu: negative slope must be a finite number, got ${slope}`);
  const e = x.engine;
  const y = activationForwardOp.get(e)(x.value, name, slope);
  // d/dx = act'(x), computed from y: relu 1[y>0], leaky 1 or slope, sigmoid y(1-y), tanh 1-y².
  return record(name, [x], y, (dy) => [activationBackwardOp.get(e)(y, dy, name, slope)]);
}

export const relu = (x: Tensor): Tensor => activation('relu', x);
export const leakyRelu = (x: Tensor, negativeSlope = 0.01): Tensor => activation('leakyRelu', x, negativeSlope);
export const sigmoid = (x: Tensor): Tensor => activation('sigmoid', x);
export const tanh = (x: Tensor): Tensor => activation('tanh', x);

/** Softmax over `dim` (the last dimension; other dimensions are not supported yet). */
export function softmax(x: Tensor, dim = -1): Tensor {
  const d = dim < 0 ? dim + x.shape.length : dim;
  if (d !== x.shape.length - 1)
    throw new ShapeError(`softmax: only the last dimension is supported (got dim=${dim} for ${shapeString(x.shape)})`);
  const e = x.engine;
  const y = softmaxForwardOp.get(e)(x.value);
  // d/dx = y ⊙ (dy - Σ dy ⊙ y) per row.
  return record('softmax', [x], y, (dy) => [softmaxBackwardOp.get(e)(y, dy)]);
}

// ------------------------------------------------------------------ losses (mean reduction, 0-d output)

/** mean(-(t log p + (1-t) log(1-p))), logs clamped at -100 as PyTorch. */
export function binaryCrossEntropy(p: Tensor, target: Tensor): Tensor {
  sameEngine('binaryCrossEntropy', p, target);
  const e = p.engine;
  const l = bceForwardOp.get(e)(p.value, target.value);
  // d/dp = (p - t) / max(p(1-p), 1e-12) / n.
  return record('binaryCrossEntropy', [p], l, (dy) => [bceBackwardOp.get(e)(p.value, target.value, dy)]);
}

/** mean(max(z,0) - z t + log(1 + e^-|z|)). */
export function binaryCrossEntropyWithLogits(z: Tensor, target: Tensor): Tensor {
  sameEngine('binaryCrossEntropyWithLogits', z, target);
  const e = z.engine;
  const l = bceWithLogitsForwardOp.get(e)(z.value, target.value);
  // d/dz = (sigmoid(z) - t) / n.
  return record('binaryCrossEntropyWithLogits', [z], l, (dy) => [
    bceWithLogitsBackwardOp.get(e)(z.value, target.value, dy),
  ]);
}

/** Softmax cross-entropy with integer labels: mean_n(logsumexp(z_n) - z_n[label_n]). */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  sameEngine('crossEntropy', logits, labels);
  const e = logits.engine;
  // The kernel clamps labels into range (no out-of-bounds read) but would compute a wrong loss: labels
  // made from host data are checked here, without a readback (labels computed on the GPU are not).
  const range = e.knownRange(labels.value);
  const classes = logits.shape[1];
  if (range && labels.dtype === 'i32' && labels.size > 0 && logits.shape.length === 2 && (range.min < 0 || range.max >= classes))
    throw new InvalidArgumentError(
      `crossEntropy: labels must be class indices in [0, ${classes}) for logits ${shapeString(logits.shape)}, got labels from ${range.min} to ${range.max}`,
    );
  const l = crossEntropyForwardOp.get(e)(logits.value, labels.value);
  // d/dz = (softmax(z) - onehot(label)) / N.
  return record('crossEntropy', [logits], l, (dy) => [
    crossEntropyBackwardOp.get(e)(logits.value, labels.value, dy),
  ]);
}

// ------------------------------------------------------------------ normalisation and regularisation

export interface BatchNormOptions {
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/** Batch norm over (N,H,W) per channel; in training the running statistics are updated in place. */
export function batchNorm2d(
  x: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  gamma: Tensor,
  beta: Tensor,
  options: BatchNormOptions = {},
): Tensor {
  sameEngine('batchNorm2d', x, runningMean, runningVar, gamma, beta);
  const eps = options.eps ?? 1e-5;
  const e = x.engine;
  if (options.training ?? false) {
    const { y, mean, invStd } = batchNorm2dTrainForwardOp.get(e)(
      x.value, gamma.value, beta.value, runningMean.value, runningVar.value, { momentum: options.momentum ?? 0.1, eps },
    );
    // Batch statistics depend on x, so dx has the two extra terms of the mean and variance paths.
    return record('batchNorm2d', [x, gamma, beta], y, (dy) => {
      const g = batchNorm2dBackwardOp.get(e)(x.value, dy, gamma.value, mean, invStd);
      return [g.dx, g.dgamma, g.dbeta];
    }, [mean, invStd]);
  }
  const y = batchNorm2dEvalForwardOp.get(e)(x.value, gamma.value, beta.value, runningMean.value, runningVar.value, eps);
  // With running statistics the op is affine in x: dx = dy * gamma / sqrt(var + eps).
  return record('batchNorm2d', [x, gamma, beta], y, (dy) => {
    const g = batchNorm2dEvalBackwardOp.get(e)(x.value, dy, gamma.value, runningMean.value, runningVar.value, eps);
    return [g.dx, g.dgamma, g.dbeta];
  });
}

export interface SpectralNormalized {
  /** W / sigma, shaped as the weight; differentiable in W. */
  weight: Tensor;
  /** The new estimates of the top singular vectors ([rows], [cols]) and sigma ([]): untracked, the caller's. */
  u: DeviceTensor;
  v: DeviceTensor;
  sigma: DeviceTensor;
}

/**
 * Spectral normalisation W / sigma (torch.nn.utils.spectral_norm, dim 0): W viewed as [rows, cols], `steps`
 * power steps from the estimates u [rows] and v [cols] (0: use them as they are, torch's eval mode), then
 * sigma = uᵀ W v with the new u, v.
 */
export function spectralNormalize(weight: Tensor, u: Tensor, v: Tensor, options: { steps: number; eps: number }): SpectralNormalized {
  sameEngine('spectralNormalize', weight, u, v);
  const e = weight.engine;
  const r = spectralNormForwardOp.get(e)(weight.value, u.value, v.value, options);
  // u and v are constants of the derivative, as in torch: d(W / sigma)/dW with sigma = uᵀ W v gives
  // dW = g / sigma - (sum(g ∘ W) / sigma²) u vᵀ. The node keeps its own views of this forward's u, v, sigma.
  const saved = [r.u.reshape(r.u.shape), r.v.reshape(r.v.shape), r.sigma.reshape(r.sigma.shape)];
  const normalized = record('spectralNormalize', [weight], r.normalized, (dy) => [
    spectralNormBackwardOp.get(e)(weight.value, dy, saved[0], saved[1], saved[2]),
  ], saved);
  return { weight: normalized, u: r.u, v: r.v, sigma: r.sigma };
}

/** Inverted dropout with a GPU counter-based mask: same seed, same mask. Identity when not training. */
export function dropout(x: Tensor, p = 0.5, options: { training?: boolean; seed?: number } = {}): Tensor {
  if (!(p >= 0 && p < 1)) throw new WgslNnError(`dropout: p must be in [0, 1), got ${p}`);
  if (!(options.training ?? true) || p === 0) return identity(x);
  const seed = options.seed ?? globalRng().int(2 ** 31);
  const e = x.engine;
  const y = dropoutForwardOp.get(e)(x.value, p, seed);
  // d/dx = mask / (1 - p), the same mask regenerated from the seed.
  return record('dropout', [x], y, (dy) => [dropoutBackwardOp.get(e)(dy, p, seed)]);
}

// ------------------------------------------------------------------ shape

function identity(x: Tensor): Tensor {
  return reshape(x, x.shape);
}

/** Same data, new shape (-1 infers one dimension). Shares the buffer. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  if (sizeOf(resolved) !== x.size) throw new ShapeError(`reshape: cannot view ${shapeString(x.shape)} as ${shapeString(shape)}`);
  // d/dx: dy viewed in x's shape.
  return record('reshape', [x], x.value.reshape(resolved), (dy) => [dy.reshape(x.shape)]);
}

/** All but the first dimension flattened, in C·H·W order (as torch.flatten(x, 1)). */
export function flatten(x: Tensor): Tensor {
  if (x.shape.length < 2) return identity(x);
  return reshape(x, [x.shape[0], x.size / x.shape[0]]);
}

/** The rows [start, start + length) of dimension 0 of a device tensor, copied into a tensor of its own. */
function copyRows(x: DeviceTensor, start: number, length: number): DeviceTensor {
  const rowSize = x.size / x.shape[0];
  const out = x.engine.empty([length, ...x.shape.slice(1)], x.dtype);
  const src = x.view(start * rowSize, out.shape);
  x.engine.copy(src, out);
  src.dispose();
  return out;
}

/** Tensors joined along dimension 0 (torch.cat(xs, 0)); the other dimensions must agree. */
export function cat(xs: Tensor[]): Tensor {
  if (xs.length === 0) throw new InvalidArgumentError('cat: no tensors');
  sameEngine('cat', ...xs);
  const rest = xs[0].shape.slice(1);
  for (const x of xs)
    if (x.shape.length === 0 || x.dtype !== xs[0].dtype || x.shape.length !== xs[0].shape.length || x.shape.slice(1).some((d, i) => d !== rest[i]))
      throw new ShapeError(`cat: ${xs.map((t) => `${t.dtype} ${shapeString(t.shape)}`).join(', ')} do not agree beyond dimension 0`);
  const e = xs[0].engine;
  const y = e.empty([xs.reduce((n, x) => n + x.shape[0], 0), ...rest], xs[0].dtype);
  const rowSize = sizeOf(rest);
  let row = 0;
  const starts = xs.map((x) => {
    const dst = y.view(row * rowSize, x.shape);
    e.copy(x.value, dst);
    dst.dispose();
    row += x.shape[0];
    return row - x.shape[0];
  });
  // d/dx_i: the rows of dy that came from x_i.
  return record('cat', xs, y, (dy) => xs.map((x, i) => (x.requiresGrad ? copyRows(dy, starts[i], x.shape[0]) : null)));
}

/** The rows [start, start + length) of dimension 0 (torch.narrow(x, 0, start, length)), as a new tensor. */
export function narrow(x: Tensor, start: number, length: number): Tensor {
  if (x.shape.length === 0 || !Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 1 || start + length > x.shape[0])
    throw new ShapeError(`narrow: rows [${start}, ${start + length}) are not within ${shapeString(x.shape)}`);
  const e = x.engine;
  // d/dx: dy in those rows, zero elsewhere.
  return record('narrow', [x], copyRows(x.value, start, length), (dy) => {
    const dx = e.empty(x.shape);
    e.clear(dx);
    const dst = dx.view(start * (x.size / x.shape[0]), dy.shape);
    e.copy(dy, dst);
    dst.dispose();
    return [dx];
  });
}

// ------------------------------------------------------------------ arithmetic and reductions

function scalarOp(x: Tensor, alpha: number, beta: number, op: string): Tensor {
  const e = x.engine;
  const y = elementwiseScaleOp.get(e)(x.value, alpha, beta);
  // d/dx (alpha x + beta) = alpha.
  return record(op, [x], y, (dy) => [elementwiseScaleOp.get(e)(dy, alpha, 0)]);
}

function binaryOp(a: Tensor, b: Tensor, op: BinaryOp): Tensor {
  sameEngine(op, a, b);
  const e = a.engine;
  const y = elementwiseBinaryOp.get(e)(a.value, b.value, op);
  const toShape = (g: DeviceTensor, shape: readonly number[]): DeviceTensor => {
    if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
    const r = reduceSumToShapeOp.get(e)(g, shape);
    g.dispose();
    return r;
  };
  return record(op, [a, b], y, (dy) => {
    const bin = elementwiseBinaryOp.get(e);
    switch (op) {
      case 'add': // d/da = 1, d/db = 1 (summed over broadcast axes)
        return [a.requiresGrad ? toShape(dy.reshape(dy.shape), a.shape) : null, b.requiresGrad ? toShape(dy.reshape(dy.shape), b.shape) : null];
      case 'sub': // d/da = 1, d/db = -1
        return [
          a.requiresGrad ? toShape(dy.reshape(dy.shape), a.shape) : null,
          b.requiresGrad ? toShape(elementwiseScaleOp.get(e)(dy, -1, 0), b.shape) : null,
        ];
      case 'mul': // d/da = b, d/db = a
        return [a.requiresGrad ? toShape(bin(dy, b.value, 'mul'), a.shape) : null, b.requiresGrad ? toShape(bin(dy, a.value, 'mul'), b.shape) : null];
      case 'div': { // d/da = 1/b, d/db = -a/b² = -y/b
        const da = a.requiresGrad ? toShape(bin(dy, b.value, 'div'), a.shape) : null;
        let db: DeviceTensor | null = null;
        if (b.requiresGrad) {
          const yb = bin(y, b.value, 'div');
          const t = bin(dy, yb, 'mul');
          yb.dispose();
          db = toShape(elementwiseScaleOp.get(e)(t, -1, 0), b.shape);
          t.dispose();
        }
        return [da, db];
      }
    }
  });
}

/** a + b with broadcasting (b may be a number). */
export const add = (a: Tensor, b: Tensor | number): Tensor => (typeof b === 'number' ? scalarOp(a, 1, b, 'add') : binaryOp(a, b, 'add'));
/** a - b with broadcasting (b may be a number). */
export const sub = (a: Tensor, b: Tensor | number): Tensor => (typeof b === 'number' ? scalarOp(a, 1, -b, 'sub') : binaryOp(a, b, 'sub'));
/** a * b with broadcasting (b may be a number). */
export const mul = (a: Tensor, b: Tensor | number): Tensor => (typeof b === 'number' ? scalarOp(a, b, 0, 'mul') : binaryOp(a, b, 'mul'));
/** a / b with broadcasting (b may be a number). */
export const div = (a: Tensor, b: Tensor | number): Tensor => (typeof b === 'number' ? scalarOp(a, 1 / b, 0, 'div') : binaryOp(a, b, 'div'));

function normalizeAxes(dim: number | number[] | undefined, rank: number): number[] | null {
  if (dim === undefined) return null;
  const list = Array.isArray(dim) ? dim : [dim];
  return list.map((d) => {
    const a = d < 0 ? d + rank : d;
    if (a < 0 || a >= rank) throw new ShapeError(`dimension ${d} out of range for a ${rank}-D tensor`);
    return a;
  });
}

function reduction(x: Tensor, dim: number | number[] | undefined, keepDim: boolean, kind: 'sum' | 'mean'): Tensor {
  const e = x.engine;
  const axes = normalizeAxes(dim, x.shape.length);
  const y = (kind === 'sum' ? reduceSumOp : reduceMeanOp).get(e)(x.value, axes, keepDim);
  const count = axes ? axes.reduce((n, a) => n * x.shape[a], 1) : x.size;
  const keptShape = x.shape.map((d, i) => (axes === null || axes.includes(i) ? 1 : d));
  // d/dx: dy broadcast back over the reduced axes (divided by their size for the mean).
  return record(kind, [x], y, (dy) => {
    const zeros = e.zeros(x.shape);
    const dyKept = dy.reshape(keptShape);
    const expanded = elementwiseBinaryOp.get(e)(zeros, dyKept, 'add');
    zeros.dispose();
    dyKept.dispose();
    if (kind === 'sum') return [expanded];
    const scaled = elementwiseScaleOp.get(e)(expanded, 1 / count, 0);
    expanded.dispose();
    return [scaled];
  });
}

/** Sum over `dim` (all dimensions when omitted: a 0-d tensor). */
export const sum = (x: Tensor, dim?: number | number[], keepDim = false): Tensor => reduction(x, dim, keepDim, 'sum');
/** Mean over `dim` (all dimensions when omitted: a 0-d tensor). */
export const mean = (x: Tensor, dim?: number | number[], keepDim = false): Tensor => reduction(x, dim, keepDim, 'mean');

// ------------------------------------------------------------------ DiffAugment (differentiable augmentation)

/**
 * Runs a DiffAugment op whose per-sample parameter table [N,k] is given on the host. The table is
 * uploaded once and kept for the backward pass, so both use the same draw.
 */
function augmentOp(
  x: Tensor,
  name: DiffAugmentPolicy,
  params: ArrayLike<number>,
  forward: typeof diffAugmentTranslateOp,
  backward: typeof diffAugmentTranslateOp,
): Tensor {
  expectDims(x, 4, name);
  const perSample = PARAMS_PER_SAMPLE[name];
  if (params.length !== x.shape[0] * perSample)
    throw new ShapeError(
      `${name}: ${params.length} parameters for the ${x.shape[0]} samples of ${shapeString(x.shape)}; expected ${perSample} per sample`,
    );
  if (name !== 'color' && !Array.from(params).every(Number.isInteger))
    throw new RangeError(`${name}: parameters must be whole pixels, got [${Array.from(params).join(', ')}]`);
  const e = x.engine;
  const table = e.fromArray(Float32Array.from(params), [x.shape[0], perSample]);
  // Every DiffAugment op, forward or backward, has the signature (a, table) => result.
  const y = forward.get(e)(x.value, table);
  return record(name, [x], y, (dy) => [backward.get(e)(dy, table)], [table]);
}

/**
 * Shifts sample n by whole pixels, shifts[2n] = dx along W and shifts[2n+1] = dy along H:
 * y[n,c,i,j] = x[n,c,i-dy,j-dx], 0 where that pixel is outside the image.
 */
export function translate(x: Tensor, shifts: ArrayLike<number>): Tensor {
  // d/dx: the adjoint, dy shifted back by (-dx, -dy), 0 where the source pixel fell outside.
  return augmentOp(x, 'translation', shifts, diffAugmentTranslateOp, diffAugmentTranslateBackwardOp);
}

/** Zeroes the box boxes[4n..4n+3] = (x0, y0, x1, y1) (half-open, may cross the border) of sample n. */
export function cutout(x: Tensor, boxes: ArrayLike<number>): Tensor {
  // d/dx: the same 0/1 mask applied to dy.
  return augmentOp(x, 'cutout', boxes, diffAugmentCutoutOp, diffAugmentCutoutBackwardOp);
}

/**
 * Brightness, saturation and contrast of sample n, params[3n..3n+2] = (b, s, c), in that order:
 * x + b; (x - mean over C) s + mean over C; (x - mean over C,H,W) c + mean over C,H,W. s = 1: no saturation.
 */
export function adjustColor(x: Tensor, params: ArrayLike<number>): Tensor {
  // d/dx: s, c scale deviations from the means and the means pass through; b has no derivative:
  // dx = c s (dy - mean_C dy) + c (mean_C dy - mean dy) + mean dy  (for C = 1: c dy + (1 - c) mean dy).
  return augmentOp(x, 'color', params, diffAugmentColorOp, diffAugmentColorBackwardOp);
}

export { diffAugmentPlan, type DiffAugmentPolicy };

export interface DiffAugmentOptions {
  /** The ops, applied in this order. Default ['color', 'translation', 'cutout']. */
  policy?: readonly DiffAugmentPolicy[];
  /** Seed of the per-sample parameters, an integer in [0, 2^32); by default the next value of the global generator (manualSeed). */
  seed?: number;
  /** Translation range as a fraction of the image size (default 1/8). */
  translationRatio?: number;
  /** Cutout side as a fraction of the image size (default 0.5). */
  cutoutRatio?: number;
}

/**
 * DiffAugment (Zhao et al. 2020) of an NCHW batch: the policy's ops with per-sample parameters drawn
 * from the seed (see diffAugmentPlan in src/kernels/diffaugment.ts). Apply it to real and fake images
 * alike; gradients flow through to the generator.
 */
export function diffAugment(x: Tensor, options: DiffAugmentOptions = {}): Tensor {
  expectDims(x, 4, 'diffAugment');
  const seed = options.seed ?? globalRng().int(2 ** 31);
  const plan = diffAugmentPlan(x.shape, { ...options, seed });
  if (plan.length === 0) return identity(x);
  let y = x;
  for (const { op, params } of plan) {
    y = op === 'translation' ? translate(y, params) : op === 'cutout' ? cutout(y, params) : adjustColor(y, params);
  }
  return y;
}
