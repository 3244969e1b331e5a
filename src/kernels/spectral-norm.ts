// Spectral normalisation of a weight (shaders/spectral_norm.wgsl): the power iteration, sigma and
// W / sigma in one dispatch, and the weight gradient in one more, as torch.nn.utils.spectral_norm (dim 0)
// computes them. The weight is viewed as the matrix [rows, cols] with rows = u's length and cols = v's.
// Reference: src/kernels/reference/spectral-norm.ts. nn's SpectralNorm (src/nn/modules.ts) runs it
// through F.spectralNormalize.
import { f32, formatBytes } from '../gpu/engine.js';
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { InvalidArgumentError, ShapeError, TensorTooLargeError } from '../gpu/errors.js';
import { checkF32 } from './matmul.js';
import { defineOp } from './registry.js';

export interface SpectralNormParams {
  /** Power-iteration steps (0: use u and v as given, torch's eval mode). */
  steps: number;
  /** Guard of the normalisations: x / max(|x|, eps). */
  eps: number;
}

export interface SpectralNormResult {
  /** W / sigma, shaped as the weight. */
  normalized: DeviceTensor;
  /** The new estimates of the top singular vectors, [rows] and [cols]. */
  u: DeviceTensor;
  v: DeviceTensor;
  /** sigma = uᵀ W v, shape [] (0-d). */
  sigma: DeviceTensor;
}

function checkVectors(op: string, w: DeviceTensor, u: DeviceTensor, v: DeviceTensor): void {
  checkF32(op, w, u, v);
  if (w.shape.length < 1 || w.size === 0) throw new ShapeError(`${op}: the weight must be a non-empty tensor, got ${shapeString(w.shape)}`);
  const rows = w.shape[0];
  if (u.size !== rows || v.size * rows !== w.size)
    throw new ShapeError(
      `${op}: weight ${shapeString(w.shape)} is the matrix [${rows}, ${w.size / rows}]; u must hold ${rows} values and v ${w.size / rows}, got u ${shapeString(u.shape)}, v ${shapeString(v.shape)}`,
    );
  const limit = w.engine.limits.maxStorageBufferBindingSize;
  if (w.byteLength > limit)
    throw new TensorTooLargeError(`${op}: weight ${shapeString(w.shape)} (${formatBytes(w.byteLength)}) is over one storage binding (${formatBytes(limit)})`);
}

function checkForward(w: DeviceTensor, u: DeviceTensor, v: DeviceTensor, params: SpectralNormParams): void {
  checkVectors('spectralNorm.forward', w, u, v);
  if (!Number.isInteger(params.steps) || params.steps < 0)
    throw new InvalidArgumentError(`spectralNorm.forward: steps must be an integer >= 0, got ${params.steps}`);
  if (!(params.eps > 0) || !Number.isFinite(params.eps)) throw new InvalidArgumentError(`spectralNorm.forward: eps must be a finite number > 0, got ${params.eps}`);
}

function checkBackward(w: DeviceTensor, gradOut: DeviceTensor, u: DeviceTensor, v: DeviceTensor, sigma: DeviceTensor): void {
  checkVectors('spectralNorm.backward', w, u, v);
  checkF32('spectralNorm.backward', gradOut, sigma);
  if (gradOut.size !== w.size)
    throw new ShapeError(`spectralNorm.backward: gradOut ${shapeString(gradOut.shape)} must have the weight's ${w.size} elements (${shapeString(w.shape)})`);
  if (sigma.size !== 1) throw new ShapeError(`spectralNorm.backward: sigma must hold 1 value, got ${shapeString(sigma.shape)}`);
}

/** `steps` power steps from (u, v), sigma = uᵀ W v and W / sigma, in one dispatch. */
export function spectralNormForward(w: DeviceTensor, u: DeviceTensor, v: DeviceTensor, params: SpectralNormParams): SpectralNormResult {
  const e = w.engine;
  const rows = u.size;
  const cols = v.size;
  const result = { normalized: e.empty(w.shape), u: e.empty([rows]), v: e.empty([cols]), sigma: e.empty([]) };
  e.dispatch({
    shader: 'spectral_norm',
    entry: 'spectral_norm_forward',
    uniforms: [rows, cols, params.steps, f32(params.eps)],
    bindings: [w, u, v, result.u, result.v, result.sigma, result.normalized],
    workgroups: [1, 1, 1],
    label: `spectralNorm.forward [${rows}, ${cols}] steps=${params.steps}`,
  });
  return result;
}

/** dL/dW of W / sigma for gradOut = dL/d(W / sigma), with u, v and sigma those of the forward. */
export function spectralNormBackward(w: DeviceTensor, gradOut: DeviceTensor, u: DeviceTensor, v: DeviceTensor, sigma: DeviceTensor): DeviceTensor {
  const e = w.engine;
  const dw = e.empty(w.shape);
  e.dispatch({
    shader: 'spectral_norm',
    entry: 'spectral_norm_backward',
    uniforms: [u.size, v.size, 0, f32(0)],
    bindings: [w, gradOut, u, v, sigma, dw],
    workgroups: [1, 1, 1],
    label: `spectralNorm.backward [${u.size}, ${v.size}]`,
  });
  return dw;
}

export const spectralNormForwardOp = defineOp<typeof spectralNormForward>('spectralNorm.forward', { check: checkForward });
spectralNormForwardOp.register('workgroup', spectralNormForward, { description: 'power steps, sigma and W / sigma in one workgroup' });
export const spectralNormBackwardOp = defineOp<typeof spectralNormBackward>('spectralNorm.backward', { check: checkBackward });
spectralNormBackwardOp.register('workgroup', spectralNormBackward, { description: 'sum(g * W) and the gradient in one workgroup' });
