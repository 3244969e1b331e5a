// CPU reference for nearest-neighbour upsampling by an integer factor (NCHW), in float64.
// Written from the definition (torch.nn.Upsample(scale_factor=s, mode='nearest')): output pixel
// (oy, ox) copies input pixel (floor(oy / s), floor(ox / s)); the backward scatters each dy element
// back to the input pixel it came from.

export function upsampleNearest2dRef(x: ArrayLike<number>, shape: readonly number[], s: number): { y: Float64Array; shape: number[] } {
  const [n, c, h, w] = shape;
  const ho = h * s;
  const wo = w * s;
  const y = new Float64Array(n * c * ho * wo);
  for (let plane = 0; plane < n * c; plane++)
    for (let oy = 0; oy < ho; oy++)
      for (let ox = 0; ox < wo; ox++) y[(plane * ho + oy) * wo + ox] = x[(plane * h + Math.floor(oy / s)) * w + Math.floor(ox / s)];
  return { y, shape: [n, c, ho, wo] };
}

/** Scatter form (the GPU gathers): dx[source of each output] += dy[output]. */
export function upsampleNearest2dBackwardRef(dy: ArrayLike<number>, xShape: readonly number[], s: number): Float64Array {
  const [n, c, h, w] = xShape;
  const ho = h * s;
  const wo = w * s;
  const dx = new Float64Array(n * c * h * w);
  for (let plane = 0; plane < n * c; plane++)
    for (let oy = 0; oy < ho; oy++)
      for (let ox = 0; ox < wo; ox++) dx[(plane * h + Math.floor(oy / s)) * w + Math.floor(ox / s)] += dy[(plane * ho + oy) * wo + ox];
  return dx;
}
