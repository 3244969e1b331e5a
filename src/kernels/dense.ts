// Dense (fully connected) layer kernels: x [N,in], w [out,in], b [out]. All three are plain GEMMs on
// the shared core (shaders/matmul.wgsl); bias and activation fuse into the forward's write.
// Tensors over one storage binding are split by rows (src/kernels/batch-split.ts): the forward and d/dx
// run per range of rows, d/dw adds the ranges' partial gradients.
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { checkGate, gatePart, gateSplitOperands, type Activation, type ActivationGate } from './activation.js';
import { GEMM_VARIANT_NAMES, checkF32, gemmBucket, plainGemm, registerPerCore, softwareVec4Info, type GemmCore } from './matmul.js';
import { defineOp } from './registry.js';
import { forEachSplit, sumParts } from './batch-split.js';

const s = (t: DeviceTensor) => `[${t.shape.join(', ')}]`;

type Epilogue = { activation?: Activation; slope?: number };
/** y = act(x w^T + b): x [N,in], w [out,in], b [out] or null -> [N,out]. */
export type LinearForwardFn = (x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, opts?: Epilogue) => DeviceTensor;
/** With `gate`, the backward passes read dy as dy * act'(gate.y) (see ActivationGate). */
export type BackwardOptions = { gate?: ActivationGate };
/** dx = dy w: dy [N,out], w [out,in] -> [N,in]. */
export type LinearBackwardInputFn = (dy: DeviceTensor, w: DeviceTensor, opts?: BackwardOptions) => DeviceTensor;
/** dw = dy^T x: x [N,in], dy [N,out] -> [out,in]. */
export type LinearBackwardWeightFn = (x: DeviceTensor, dy: DeviceTensor, opts?: BackwardOptions) => DeviceTensor;

const forwardWhat = (x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null) => `linear.forward: x ${s(x)}, w ${s(w)}${b ? `, b ${s(b)}` : ''}`;
const backwardInputWhat = (dy: DeviceTensor, w: DeviceTensor) => `linear.backwardInput: dy ${s(dy)}, w ${s(w)}`;
const backwardWeightWhat = (x: DeviceTensor, dy: DeviceTensor) => `linear.backwardWeight: x ${s(x)}, dy ${s(dy)}`;

// The ops, with the checks their variants rely on (the registry runs them once per call) and the
// shape buckets for tuned choices: the GEMM each pass runs (M rows, N columns, K reduction).
export const linearForwardOp = defineOp<LinearForwardFn>('linear.forward', {
  check: (x, w, b) => {
    const what = forwardWhat(x, w, b);
    checkF32('linear.forward', x, w, b);
    if (x.shape.length !== 2 || w.shape.length !== 2) throw new ShapeError(`${what}: x must be [N,in] and w [out,in]`);
    const [outF, inW] = w.shape;
    if (inW !== x.shape[1]) throw new ShapeError(`${what}: x has ${x.shape[1]} features, w expects in_features=${inW}`);
    if (b && (b.shape.length !== 1 || b.shape[0] !== outF)) throw new ShapeError(`${what}: b must be [${outF}]`);
  },
  bucket: (x, w) => gemmBucket(x.shape[0], w.shape[0], w.shape[1]),
});

export const linearBackwardInputOp = defineOp<LinearBackwardInputFn>('linear.backwardInput', {
  check: (dy, w, opts) => {
    const what = backwardInputWhat(dy, w);
    checkF32('linear.backwardInput', dy, w);
    if (dy.shape.length !== 2 || w.shape.length !== 2) throw new ShapeError(`${what}: dy must be [N,out] and w [out,in]`);
    if (w.shape[0] !== dy.shape[1]) throw new ShapeError(`${what}: dy has ${dy.shape[1]} features, w has ${w.shape[0]} outputs`);
    checkGate('linear.backwardInput', dy, opts?.gate);
  },
  bucket: (dy, w) => gemmBucket(dy.shape[0], w.shape[1], w.shape[0]),
});

export const linearBackwardWeightOp = defineOp<LinearBackwardWeightFn>('linear.backwardWeight', {
  check: (x, dy, opts) => {
    const what = backwardWeightWhat(x, dy);
    checkF32('linear.backwardWeight', x, dy);
    if (x.shape.length !== 2 || dy.shape.length !== 2) throw new ShapeError(`${what}: x must be [N,in] and dy [N,out]`);
    if (dy.shape[0] !== x.shape[0]) throw new ShapeError(`${what}: batch sizes differ`);
    checkGate('linear.backwardWeight', dy, opts?.gate);
  },
  bucket: (x, dy) => gemmBucket(dy.shape[1], x.shape[1], x.shape[0]),
});

// The variants below assume arguments that passed their op's check.

function linearForwardWith(
  core: GemmCore,
  x: DeviceTensor,
  w: DeviceTensor,
  b: DeviceTensor | null,
  opts: { activation?: Activation; slope?: number } = {},
): DeviceTensor {
  const what = forwardWhat(x, w, b);
  const [n, inF] = x.shape;
  const outF = w.shape[0];
  const y = x.engine.empty([n, outF]);
  const operands = [{ tensor: x, name: 'x', unit: inF }, { tensor: y, name: 'y', unit: outF, output: true }];
  forEachSplit(x.engine, what, n, operands, (r, [xs, ys]) => {
    // y[n, o] = sum_i x[n, i] w[o, i]: A = x (row-major), B[i, o] = w[o, i].
    plainGemm(core, what, xs, w, ys, { M: r.count, N: outF, K: inF, batch: 1 }, [0, inF, 1], [0, 1, inF], [0, outF, 1], {
      bias: b, activation: opts.activation, slope: opts.slope, batchRows: true,
    });
  }, { unitName: 'row' });
  return y;
}

function linearBackwardInputWith(core: GemmCore, dy: DeviceTensor, w: DeviceTensor, gate?: ActivationGate): DeviceTensor {
  const what = backwardInputWhat(dy, w);
  const [n, outF] = dy.shape;
  const inF = w.shape[1];
  const dx = dy.engine.empty([n, inF]);
  const operands = [{ tensor: dy, name: 'dy', unit: outF }, { tensor: dx, name: 'dx', unit: inF, output: true }, ...gateSplitOperands(gate, outF)];
  forEachSplit(dy.engine, what, n, operands, (r, [dys, dxs, gys]) => {
    // dx[n, i] = sum_o dy[n, o] w[o, i]
    plainGemm(core, what, dys, w, dxs, { M: r.count, N: inF, K: outF, batch: 1 }, [0, outF, 1], [0, inF, 1], [0, inF, 1], {
      aGate: gatePart(gate, gys),
    });
  }, { unitName: 'row' });
  return dx;
}

function linearBackwardWeightWith(core: GemmCore, x: DeviceTensor, dy: DeviceTensor, gate?: ActivationGate): DeviceTensor {
  const what = backwardWeightWhat(x, dy);
  const [n, inF] = x.shape;
  const outF = dy.shape[1];
  const parts: DeviceTensor[] = [];
  const operands = [{ tensor: x, name: 'x', unit: inF }, { tensor: dy, name: 'dy', unit: outF }, ...gateSplitOperands(gate, outF)];
  forEachSplit(x.engine, what, n, operands, (r, [xs, dys, gys]) => {
    const dw = x.engine.empty([outF, inF]);
    parts.push(dw);
    // dw[o, i] = sum_n dy[n, o] x[n, i]: A[o, n] = dy[n, o], B[n, i] = x[n, i].
    plainGemm(core, what, dys, xs, dw, { M: outF, N: inF, K: r.count, batch: 1 }, [0, 1, outF], [0, inF, 1], [0, inF, 1], {
      aGate: gatePart(gate, gys),
    });
  }, { unitName: 'row' });
  return sumParts(parts);
}

/** y = act(x w^T + b): x [N,in], w [out,in], b [out] or null -> [N,out]. */
export function linearForward(x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, opts?: Epilogue): DeviceTensor {
  return linearForwardOp.get(x.engine)(x, w, b, opts);
}

/** dx = dy w: dy [N,out], w [out,in] -> [N,in]. */
export function linearBackwardInput(dy: DeviceTensor, w: DeviceTensor, opts?: BackwardOptions): DeviceTensor {
  return linearBackwardInputOp.get(dy.engine)(dy, w, opts);
}

/** dw = dy^T x: x [N,in], dy [N,out] -> [out,in]. */
export function linearBackwardWeight(x: DeviceTensor, dy: DeviceTensor, opts?: BackwardOptions): DeviceTensor {
  return linearBackwardWeightOp.get(x.engine)(x, dy, opts);
}

// On software adapters the vec4 core is the default, as for matmul. The forward marks x's rows as the
// batch (batchRows), so a sample's output is bit-identical whatever batch it is computed in (an
// inspected image's score does not depend on the callers it was batched with; test/dense-batch.test.ts).
registerPerCore(linearForwardOp, GEMM_VARIANT_NAMES, (core) => (x, w, b, opts) => linearForwardWith(core, x, w, b, opts), softwareVec4Info);
registerPerCore(linearBackwardInputOp, GEMM_VARIANT_NAMES, (core) => (dy, w, opts) => linearBackwardInputWith(core, dy, w, opts?.gate), softwareVec4Info);
registerPerCore(linearBackwardWeightOp, GEMM_VARIANT_NAMES, (core) => (x, dy, opts) => linearBackwardWeightWith(core, x, dy, opts?.gate), softwareVec4Info);
