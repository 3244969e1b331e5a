// CPU reference for sum / mean over axes and sumToShape, in float64.

/** Sum of x (shape `shape`) over the axes flagged in `mask`; result in row-major order of the kept axes. */
export function sumAxesRef(x: ArrayLike<number>, shape: readonly number[], mask: readonly boolean[]): Float64Array {
  const keptDims = shape.filter((_, i) => !mask[i]);
  const m = keptDims.reduce((p, d) => p * d, 1);
  const out = new Float64Array(m);
  const n = shape.reduce((p, d) => p * d, 1);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let r = i;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = r % shape[d];
      r = Math.floor(r / shape[d]);
    }
    let o = 0;
    for (let d = 0; d < shape.length; d++) if (!mask[d]) o = o * shape[d] + idx[d];
    out[o] += x[i];
  }
  return out;
}

export function axesMaskRef(rank: number, axes: number[] | null): boolean[] {
  const mask = new Array<boolean>(rank).fill(axes === null);
  for (const a of axes ?? []) mask[a < 0 ? a + rank : a] = true;
  return mask;
}

export function sumRef(x: ArrayLike<number>, shape: readonly number[], axes: number[] | null): Float64Array {
  return sumAxesRef(x, shape, axesMaskRef(shape.length, axes));
}

export function meanRef(x: ArrayLike<number>, shape: readonly number[], axes: number[] | null): Float64Array {
  const mask = axesMaskRef(shape.length, axes);
  const count = shape.reduce((p, d, i) => (mask[i] ? p * d : p), 1);
  return sumAxesRef(x, shape, mask).map((v) => v / count);
}

/** Sum of x over the axes along which a tensor of `target` shape was broadcast to `shape`. */
export function sumToShapeRef(x: ArrayLike<number>, shape: readonly number[], target: readonly number[]): Float64Array {
  const lead = shape.length - target.length;
  const mask = shape.map((_, i) => i < lead || target[i - lead] === 1);
  return sumAxesRef(x, shape, mask);
}
