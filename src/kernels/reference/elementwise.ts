// CPU reference for broadcasting binary ops and scaling, in float64.
// Broadcasting is done by walking every output multi-index and mapping it back into each operand
// (no stride tricks shared with the GPU code).
export type BinaryOpName = 'add' | 'sub' | 'mul' | 'div';

/** numpy broadcast shape, or null when the shapes do not broadcast. */
export function broadcastShapeRef(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else return null;
  }
  return out;
}

/** Flat index into a tensor of `shape` for the output multi-index `idx` (right-aligned, size-1 dims pinned to 0). */
function operandIndex(idx: number[], shape: readonly number[]): number {
  const off = idx.length - shape.length;
  let flat = 0;
  for (let d = 0; d < shape.length; d++) flat = flat * shape[d] + (shape[d] === 1 ? 0 : idx[off + d]);
  return flat;
}

export function binaryRef(
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
  op: BinaryOpName,
): { y: Float64Array; shape: number[] } {
  const shape = broadcastShapeRef(aShape, bShape);
  if (!shape) throw new Error(`not broadcastable: [${aShape}] [${bShape}]`);
  const n = shape.reduce((p, d) => p * d, 1);
  const y = new Float64Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let r = i;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = r % shape[d];
      r = Math.floor(r / shape[d]);
    }
    const u = a[operandIndex(idx, aShape)];
    const v = b[operandIndex(idx, bShape)];
    y[i] = op === 'add' ? u + v : op === 'sub' ? u - v : op === 'mul' ? u * v : u / v;
  }
  return { y, shape };
}

export function scaleRef(x: ArrayLike<number>, alpha: number, beta = 0): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = alpha * x[i] + beta;
  return y;
}
