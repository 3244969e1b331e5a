// Elementwise arithmetic: broadcasting binary ops, affine scaling, scaling by a scalar tensor
// (shaders/elementwise.wgsl). Tensors over one storage binding run per range of the outermost
// (merged) dimension, or of elements (src/kernels/batch-split.ts).
import { f32, type Engine } from '../gpu/engine.js';
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError } from '../gpu/errors.js';
import { defineOp } from './registry.js';
import { forEachSplit, type SplitOperand } from './batch-split.js';

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

/** Codes of the OP_* constants in shaders/elementwise.wgsl. */
const OP_CODE: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, div: 3 };
const WG = 256;
/** Dims the shader's uniform struct holds after coalescing. */
const MAX_DIMS = 8;

/**
 * The numpy broadcast of two shapes: aligned at the right, each pair of dims must be equal or one of
 * them 1. Throws ShapeError naming both shapes otherwise.
 */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new ShapeError(
        `cannot broadcast shapes ${shapeString(a)} and ${shapeString(b)}: dim ${i - n} is ${da} vs ${db}`,
      );
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * The broadcast problem reduced to few dims, innermost first: dims of size 1 dropped, and neighbours
 * merged where both operands step through them contiguously (or are broadcast along both).
 * Example: [N,C,H,W] + [1,C,1,1] becomes shape [H*W, C, N] with b strides [0, 1, 0].
 */
export function coalesceBroadcast(
  outShape: readonly number[],
  aShape: readonly number[],
  bShape: readonly number[],
): { shape: number[]; strideA: number[]; strideB: number[] } {
  const n = outShape.length;
  const stridesOf = (s: readonly number[]): number[] => {
    const st = new Array<number>(n).fill(0);
    let acc = 1;
    for (let i = n - 1; i >= 0; i--) {
      const d = s[s.length - n + i] ?? 1;
      st[i] = d === 1 ? 0 : acc; // broadcast (or size-1) dims never advance the operand
      acc *= d;
    }
    return st;
  };
  const sa = stridesOf(aShape);
  const sb = stridesOf(bShape);
  const shape: number[] = [];
  const strideA: number[] = [];
  const strideB: number[] = [];
  for (let i = n - 1; i >= 0; i--) {
    const d = outShape[i];
    if (d === 1) continue;
    const k = shape.length - 1;
    if (k >= 0 && sa[i] === strideA[k] * shape[k] && sb[i] === strideB[k] * shape[k]) {
      shape[k] *= d; // contiguous continuation of the inner dim for both operands
    } else {
      shape.push(d);
      strideA.push(sa[i]);
      strideB.push(sb[i]);
    }
  }
  return { shape, strideA, strideB };
}

function requireF32(op: string, ...ts: DeviceTensor[]): void {
  for (const t of ts)
    if (t.dtype !== 'f32') throw new ShapeError(`${op}: expected a float32 tensor, got ${t.dtype} ${shapeString(t.shape)}`);
}

/**
 * Outputs per invocation. On CPU implementations (lavapipe) per-invocation overhead and integer
 * division dominate, and 64 consecutive outputs per invocation ran a [32,32,112,112] + [1,32,1,1]
 * add ~10x faster than one. On real GPUs one output per invocation keeps a warp's reads coalesced.
 */
export const SOFTWARE_PER_INVOCATION = 64;

/** Outputs per invocation for an engine: the registry's preferred variant for its adapter kind. */
export function perInvocation(e: Engine): number {
  return e.info.software ? SOFTWARE_PER_INVOCATION : 1;
}

/** a (op) b with numpy broadcasting; the result has the broadcast shape. */
export function binary(a: DeviceTensor, b: DeviceTensor, op: BinaryOp): DeviceTensor {
  return binaryWith(a, b, op, perInvocation(a.engine));
}

function binaryWith(a: DeviceTensor, b: DeviceTensor, op: BinaryOp, v: number): DeviceTensor {
  requireF32(`elementwise.binary (${op})`, a, b);
  if (!(op in OP_CODE)) throw new Error(`elementwise.binary: unknown op '${op}'`);
  const shape = broadcastShape(a.shape, b.shape);
  const e = a.engine;
  const out = e.empty(shape);
  if (out.size === 0) return out;
  const c = coalesceBroadcast(shape, a.shape, b.shape);
  if (c.shape.length > MAX_DIMS)
    throw new ShapeError(
      `elementwise.binary: shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} need ${c.shape.length} dims after merging; at most ${MAX_DIMS} are supported`,
    );
  const pad = (v: number[], fill: number) => [...v, ...new Array<number>(MAX_DIMS - v.length).fill(fill)];
  const label = `elementwise.binary ${op} ${shapeString(a.shape)} ${shapeString(b.shape)}`;
  // Split along the outermost merged dim: the output and each operand that steps along it (an operand
  // broadcast along it is bound whole in every range).
  const outer = c.shape.length - 1;
  const units = outer >= 0 ? c.shape[outer] : 1;
  const operands: SplitOperand[] = [{ tensor: out, name: 'out', unit: out.size / units, output: true }];
  if (outer >= 0 && c.strideA[outer] !== 0) operands.push({ tensor: a, name: 'a', unit: c.strideA[outer] });
  if (outer >= 0 && c.strideB[outer] !== 0) operands.push({ tensor: b, name: 'b', unit: c.strideB[outer] });
  forEachSplit(e, label, units, operands, (r, parts) => {
    const shape = outer >= 0 ? [...c.shape.slice(0, outer), r.count] : c.shape;
    const outPart = parts[0];
    let k = 1;
    const aPart = outer >= 0 && c.strideA[outer] !== 0 ? parts[k++] : a;
    const bPart = outer >= 0 && c.strideB[outer] !== 0 ? parts[k++] : b;
    e.dispatch({
      shader: 'elementwise',
      entry: 'binary',
      constants: { OP: OP_CODE[op], V: v },
      uniforms: [...pad(shape, 1), ...pad(c.strideA, 0), ...pad(c.strideB, 0), outPart.size, c.shape.length],
      bindings: [aPart, bPart, outPart],
      workgroups: e.grid(Math.ceil(outPart.size / v), WG),
      label,
    });
  }, { unitName: 'slice' });
  return out;
}

/** y = alpha * x + beta. */
export function scale(x: DeviceTensor, alpha: number, beta = 0): DeviceTensor {
  return scaleWith(x, alpha, beta, perInvocation(x.engine));
}

function scaleWith(x: DeviceTensor, alpha: number, beta: number, v: number): DeviceTensor {
  requireF32('elementwise.scale', x);
  const e = x.engine;
  const y = e.empty(x.shape);
  const label = `elementwise.scale ${shapeString(x.shape)}`;
  const operands = [{ tensor: x, name: 'x', unit: 1 }, { tensor: y, name: 'y', unit: 1, output: true }];
  forEachSplit(e, label, x.size, operands, (r, [xs, ys]) => {
    e.dispatch({
      shader: 'elementwise',
      entry: 'scale',
      constants: { V: v },
      uniforms: [r.count, f32(alpha), f32(beta)],
      bindings: [xs, ys],
      workgroups: e.grid(Math.ceil(r.count / v), WG),
      label,
    });
  }, { unitName: 'element' });
  return y;
}

/** y = alpha * s[0] * x, with s a 1-element tensor read on the GPU (e.g. an upstream scalar gradient). */
export function scaleByScalarTensor(x: DeviceTensor, s: DeviceTensor, alpha = 1): DeviceTensor {
  return scaleByScalarWith(x, s, alpha, perInvocation(x.engine));
}

function scaleByScalarWith(x: DeviceTensor, s: DeviceTensor, alpha: number, v: number): DeviceTensor {
  requireF32('elementwise.scaleByScalar', x, s);
  if (s.size !== 1)
    throw new ShapeError(`elementwise.scaleByScalar: the scalar must have 1 element, got shape ${shapeString(s.shape)}`);
  const e = x.engine;
  const y = e.empty(x.shape);
  const label = `elementwise.scaleByScalar ${shapeString(x.shape)}`;
  const operands = [{ tensor: x, name: 'x', unit: 1 }, { tensor: y, name: 'y', unit: 1, output: true }];
  forEachSplit(e, label, x.size, operands, (r, [xs, ys]) => {
    e.dispatch({
      shader: 'elementwise',
      entry: 'scale_by_scalar',
      constants: { V: v },
      uniforms: [r.count, f32(alpha), f32(0)],
      bindings: [xs, ys, s],
      workgroups: e.grid(Math.ceil(r.count / v), WG),
      label,
    });
  }, { unitName: 'element' });
  return y;
}

const V_SW = SOFTWARE_PER_INVOCATION;
export const elementwiseBinaryOp = defineOp<typeof binary>('elementwise.binary');
elementwiseBinaryOp.register('chunked', (a: DeviceTensor, b: DeviceTensor, op: BinaryOp) => binaryWith(a, b, op, V_SW), {
  description: `${V_SW} consecutive outputs per invocation; divisions once per innermost row (broadcast dims merged on the host)`,
  preferredOn: ['software'],
});
elementwiseBinaryOp.register('per-element', (a: DeviceTensor, b: DeviceTensor, op: BinaryOp) => binaryWith(a, b, op, 1), {
  description: 'one output per invocation (coalesced on real GPUs)',
  preferredOn: ['hardware'],
});
export const elementwiseScaleOp = defineOp<typeof scale>('elementwise.scale');
elementwiseScaleOp.register('chunked', (x: DeviceTensor, alpha: number, beta = 0) => scaleWith(x, alpha, beta, V_SW), {
  description: `y = alpha x + beta, ${V_SW} outputs per invocation`,
  preferredOn: ['software'],
});
elementwiseScaleOp.register('per-element', (x: DeviceTensor, alpha: number, beta = 0) => scaleWith(x, alpha, beta, 1), {
  description: 'y = alpha x + beta, one output per invocation',
  preferredOn: ['hardware'],
});
export const elementwiseScaleByScalarOp = defineOp<typeof scaleByScalarTensor>('elementwise.scaleByScalar');
elementwiseScaleByScalarOp.register('chunked',
  (x: DeviceTensor, s: DeviceTensor, alpha = 1) => scaleByScalarWith(x, s, alpha, V_SW),
  { description: `y = alpha s[0] x (s read on the GPU), ${V_SW} outputs per invocation`, preferredOn: ['software'] },
);
elementwiseScaleByScalarOp.register('per-element',
  (x: DeviceTensor, s: DeviceTensor, alpha = 1) => scaleByScalarWith(x, s, alpha, 1),
  { description: 'y = alpha s[0] x (s read on the GPU), one output per invocation', preferredOn: ['hardware'] },
);
