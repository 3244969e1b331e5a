// Dense (fully connected) layer kernels: x [N,in], w [out,in], b [out]. All three are plain GEMMs on
// the shared core (shaders/matmul.wgsl); bias and activation fuse into the forward's write.
// Tensors over one storage binding are split by rows (src/kernels/batch-split.ts): the forward and d/dx
// run per range of rows, d/dw adds the ranges' partial gradients.
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import type { Activation } from './activation.js';
import { CORE_INFO, checkF32, gemmBucket, plainGemm, type GemmCore } from './matmul.js';
import { kernels } from './registry.js';
import { forEachSplit, sumParts } from './batch-split.js';

const s = (t: DeviceTensor) => `[${t.shape.join(', ')}]`;

function linearForwardWith(
  core: GemmCore,
  x: DeviceTensor,
  w: DeviceTensor,
  b: DeviceTensor | null,
  opts: { activation?: Activation; slope?: number } = {},
): DeviceTensor {
  const what = `linear.forward: x ${s(x)}, w ${s(w)}${b ? `, b ${s(b)}` : ''}`;
  checkF32('linear.forward', x, w, b);
  if (x.shape.length !== 2 || w.shape.length !== 2) throw new ShapeError(`${what}: x must be [N,in] and w [out,in]`);
  const [n, inF] = x.shape;
  const [outF, inW] = w.shape;
  if (inW !== inF) throw new ShapeError(`${what}: x has ${inF} features, w expects ${inW}`);
  if (b && (b.shape.length !== 1 || b.shape[0] !== outF)) throw new ShapeError(`${what}: b must be [${outF}]`);
  const y = x.engine.empty([n, outF]);
  const operands = [{ tensor: x, name: 'x', unit: inF }, { tensor: y, name: 'y', unit: outF, output: true }];
  forEachSplit(x.engine, what, n, operands, (r, [xs, ys]) => {
    // y[n, o] = sum_i x[n, i] w[o, i]: A = x (row-major), B[i, o] = w[o, i].
    plainGemm(core, what, xs, w, ys, { M: r.count, N: outF, K: inF, batch: 1 }, [0, inF, 1], [0, 1, inF], [0, outF, 1], {
      bias: b, activation: opts.activation, slope: opts.slope,
    });
  }, { unitName: 'row' });
  return y;
}

function linearBackwardInputWith(core: GemmCore, dy: DeviceTensor, w: DeviceTensor): DeviceTensor {
  const what = `linear.backwardInput: dy ${s(dy)}, w ${s(w)}`;
  checkF32('linear.backwardInput', dy, w);
  if (dy.shape.length !== 2 || w.shape.length !== 2) throw new ShapeError(`${what}: dy must be [N,out] and w [out,in]`);
  const [n, outF] = dy.shape;
  const [outW, inF] = w.shape;
  if (outW !== outF) throw new ShapeError(`${what}: dy has ${outF} features, w has ${outW} outputs`);
  const dx = dy.engine.empty([n, inF]);
  const operands = [{ tensor: dy, name: 'dy', unit: outF }, { tensor: dx, name: 'dx', unit: inF, output: true }];
  forEachSplit(dy.engine, what, n, operands, (r, [dys, dxs]) => {
    // dx[n, i] = sum_o dy[n, o] w[o, i]
    plainGemm(core, what, dys, w, dxs, { M: r.count, N: inF, K: outF, batch: 1 }, [0, outF, 1], [0, inF, 1], [0, inF, 1], {});
  }, { unitName: 'row' });
  return dx;
}

function linearBackwardWeightWith(core: GemmCore, x: DeviceTensor, dy: DeviceTensor): DeviceTensor {
  const what = `linear.backwardWeight: x ${s(x)}, dy ${s(dy)}`;
  checkF32('linear.backwardWeight', x, dy);
  if (x.shape.length !== 2 || dy.shape.length !== 2) throw new ShapeError(`${what}: x must be [N,in] and dy [N,out]`);
  const [n, inF] = x.shape;
  const [nd, outF] = dy.shape;
  if (nd !== n) throw new ShapeError(`${what}: batch sizes differ`);
  const parts: DeviceTensor[] = [];
  const operands = [{ tensor: x, name: 'x', unit: inF }, { tensor: dy, name: 'dy', unit: outF }];
  forEachSplit(x.engine, what, n, operands, (r, [xs, dys]) => {
    const dw = x.engine.empty([outF, inF]);
    parts.push(dw);
    // dw[o, i] = sum_n dy[n, o] x[n, i]: A[o, n] = dy[n, o], B[n, i] = x[n, i].
    plainGemm(core, what, dys, xs, dw, { M: outF, N: inF, K: r.count, batch: 1 }, [0, 1, outF], [0, inF, 1], [0, inF, 1], {});
  }, { unitName: 'row' });
  return sumParts(parts);
}

const forwardWith = (core: GemmCore) => (x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, opts?: { activation?: Activation; slope?: number }) =>
  linearForwardWith(core, x, w, b, opts);
const backwardInputWith = (core: GemmCore) => (dy: DeviceTensor, w: DeviceTensor) => linearBackwardInputWith(core, dy, w);
const backwardWeightWith = (core: GemmCore) => (x: DeviceTensor, dy: DeviceTensor) => linearBackwardWeightWith(core, x, dy);
type Fwd = ReturnType<typeof forwardWith>;

/** y = act(x w^T + b): x [N,in], w [out,in], b [out] or null -> [N,out]. */
export function linearForward(
  x: DeviceTensor,
  w: DeviceTensor,
  b: DeviceTensor | null,
  opts?: { activation?: Activation; slope?: number },
): DeviceTensor {
  return kernels.get<Fwd>('linear.forward', x.engine)(x, w, b, opts);
}

/** dx = dy w: dy [N,out], w [out,in] -> [N,in]. */
export function linearBackwardInput(dy: DeviceTensor, w: DeviceTensor): DeviceTensor {
  return kernels.get<ReturnType<typeof backwardInputWith>>('linear.backwardInput', dy.engine)(dy, w);
}

/** dw = dy^T x: x [N,in], dy [N,out] -> [out,in]. */
export function linearBackwardWeight(x: DeviceTensor, dy: DeviceTensor): DeviceTensor {
  return kernels.get<ReturnType<typeof backwardWeightWith>>('linear.backwardWeight', x.engine)(x, dy);
}

const VARIANTS: [string, GemmCore][] = [
  ['register', 'register'],
  ['register-subgroup', 'subgroup'],
  ['subgroup-vec4', 'subgroup-vec4'],
  ['tiled', 'tiled'],
];
for (const [name, core] of VARIANTS) {
  // The vec4 core is not the default here although it is faster on big GEMMs: below 5 rows it falls
  // back to another kernel, so an image's scores would change with the batch it is inspected in.
  kernels.register('linear.forward', name, forwardWith(core), CORE_INFO[core]);
  kernels.register('linear.backwardInput', name, backwardInputWith(core), CORE_INFO[core]);
  kernels.register('linear.backwardWeight', name, backwardWeightWith(core), CORE_INFO[core]);
}

// Shape buckets for tuned choices: the GEMM each pass runs (M rows, N columns, K reduction).
kernels.setBucket('linear.forward', (x: DeviceTensor, w: DeviceTensor) => gemmBucket(x.shape[0], w.shape[0], w.shape[1]));
kernels.setBucket('linear.backwardInput', (dy: DeviceTensor, w: DeviceTensor) => gemmBucket(dy.shape[0], w.shape[1], w.shape[0]));
kernels.setBucket('linear.backwardWeight', (x: DeviceTensor, dy: DeviceTensor) => gemmBucket(dy.shape[1], x.shape[1], x.shape[0]));
