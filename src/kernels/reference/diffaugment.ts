// CPU reference for DiffAugment's translation, cutout and colour ops and their adjoints, in float64.
//
// Written from the definitions (DiffAugment_pytorch.py of Zhao et al.), independently of the WGSL:
// translation is a gather and its adjoint an explicit scatter; colour applies brightness, saturation
// and contrast one after the other (the GPU fuses them into one formula) and its adjoint chains the
// three adjoints in reverse. Parameter tables are as in src/kernels/diffaugment.ts:
//   translation [N,2] (dx, dy), cutout [N,4] (x0, y0, x1, y1) half-open, color [N,3] (b, s, c).

export type Nchw = readonly [number, number, number, number];

/** y[n,c,i,j] = x[n,c,i-dy,j-dx], 0 where (i-dy, j-dx) is outside the image. */
export function translateRef(x: ArrayLike<number>, shape: Nchw, shifts: ArrayLike<number>): Float64Array {
  const [N, C, H, W] = shape;
  const y = new Float64Array(N * C * H * W);
  for (let n = 0; n < N; n++) {
    const dx = shifts[2 * n];
    const dy = shifts[2 * n + 1];
    for (let c = 0; c < C; c++)
      for (let i = 0; i < H; i++)
        for (let j = 0; j < W; j++) {
          const si = i - dy;
          const sj = j - dx;
          const inside = si >= 0 && si < H && sj >= 0 && sj < W;
          y[((n * C + c) * H + i) * W + j] = inside ? x[((n * C + c) * H + si) * W + sj] : 0;
        }
  }
  return y;
}

/** The adjoint of translateRef: every output element sends its gradient back to the pixel it read. */
export function translateAdjointRef(gy: ArrayLike<number>, shape: Nchw, shifts: ArrayLike<number>): Float64Array {
  const [N, C, H, W] = shape;
  const gx = new Float64Array(N * C * H * W);
  for (let n = 0; n < N; n++) {
    const dx = shifts[2 * n];
    const dy = shifts[2 * n + 1];
    for (let c = 0; c < C; c++)
      for (let i = 0; i < H; i++)
        for (let j = 0; j < W; j++) {
          const si = i - dy;
          const sj = j - dx;
          if (si >= 0 && si < H && sj >= 0 && sj < W) gx[((n * C + c) * H + si) * W + sj] += gy[((n * C + c) * H + i) * W + j];
        }
  }
  return gx;
}

/** The 0/1 keep mask [N,1,H,W] (shared by the channels): 0 inside each sample's box. */
export function cutoutMaskRef(shape: Nchw, boxes: ArrayLike<number>): Float64Array {
  const [N, , H, W] = shape;
  const mask = new Float64Array(N * H * W).fill(1);
  for (let n = 0; n < N; n++) {
    const [x0, y0, x1, y1] = [boxes[4 * n], boxes[4 * n + 1], boxes[4 * n + 2], boxes[4 * n + 3]];
    for (let i = Math.max(y0, 0); i < Math.min(y1, H); i++)
      for (let j = Math.max(x0, 0); j < Math.min(x1, W); j++) mask[(n * H + i) * W + j] = 0;
  }
  return mask;
}

/** x where the box mask is 1, else 0 (exactly 0, not -0); a 0/1 diagonal map is its own adjoint (used for dy as well). */
export function cutoutRef(x: ArrayLike<number>, shape: Nchw, boxes: ArrayLike<number>): Float64Array {
  const [N, C, H, W] = shape;
  const mask = cutoutMaskRef(shape, boxes);
  const y = new Float64Array(N * C * H * W);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let s = 0; s < H * W; s++) y[(n * C + c) * H * W + s] = mask[n * H * W + s] ? x[(n * C + c) * H * W + s] : 0;
  return y;
}

/** x + b[n]. */
function brightness(x: Float64Array, shape: Nchw, params: ArrayLike<number>): Float64Array {
  const [N, C, H, W] = shape;
  const len = C * H * W;
  const y = new Float64Array(x.length);
  for (let n = 0; n < N; n++) for (let k = 0; k < len; k++) y[n * len + k] = x[n * len + k] + params[3 * n];
  return y;
}

/** (x - mean over channels) * s[n] + mean over channels, per pixel. */
function saturation(x: Float64Array, shape: Nchw, params: ArrayLike<number>): Float64Array {
  const [N, C, H, W] = shape;
  const y = new Float64Array(x.length);
  for (let n = 0; n < N; n++) {
    const s = params[3 * n + 1];
    for (let p = 0; p < H * W; p++) {
      let mean = 0;
      for (let c = 0; c < C; c++) mean += x[(n * C + c) * H * W + p];
      mean /= C;
      for (let c = 0; c < C; c++) {
        const k = (n * C + c) * H * W + p;
        y[k] = (x[k] - mean) * s + mean;
      }
    }
  }
  return y;
}

/** (x - mean over C,H,W of the sample) * c[n] + that mean. */
function contrast(x: Float64Array, shape: Nchw, params: ArrayLike<number>): Float64Array {
  const [N, C, H, W] = shape;
  const len = C * H * W;
  const y = new Float64Array(x.length);
  for (let n = 0; n < N; n++) {
    const c = params[3 * n + 2];
    let mean = 0;
    for (let k = 0; k < len; k++) mean += x[n * len + k];
    mean /= len;
    for (let k = 0; k < len; k++) y[n * len + k] = (x[n * len + k] - mean) * c + mean;
  }
  return y;
}

/** Brightness, then saturation, then contrast (DiffAugment's 'color'), params [N,3] = (b, s, c). */
export function colorRef(x: ArrayLike<number>, shape: Nchw, params: ArrayLike<number>): Float64Array {
  return contrast(saturation(brightness(Float64Array.from(x), shape, params), shape, params), shape, params);
}

/**
 * The adjoint of colorRef's derivative, the three adjoints in reverse order:
 *   contrast   dx = c dy + (1 - c) mean_{C,H,W}(dy)   (the mean's gradient spreads evenly)
 *   saturation dx = s dy + (1 - s) mean_C(dy)
 *   brightness dx = dy
 */
export function colorAdjointRef(gy: ArrayLike<number>, shape: Nchw, params: ArrayLike<number>): Float64Array {
  const [N, C, H, W] = shape;
  const len = C * H * W;
  const afterContrast = new Float64Array(gy.length);
  for (let n = 0; n < N; n++) {
    const c = params[3 * n + 2];
    let mean = 0;
    for (let k = 0; k < len; k++) mean += gy[n * len + k];
    mean /= len;
    for (let k = 0; k < len; k++) afterContrast[n * len + k] = c * gy[n * len + k] + (1 - c) * mean;
  }
  const gx = new Float64Array(gy.length);
  for (let n = 0; n < N; n++) {
    const s = params[3 * n + 1];
    for (let p = 0; p < H * W; p++) {
      let mean = 0;
      for (let ch = 0; ch < C; ch++) mean += afterContrast[(n * C + ch) * H * W + p];
      mean /= C;
      for (let ch = 0; ch < C; ch++) {
        const k = (n * C + ch) * H * W + p;
        gx[k] = s * afterContrast[k] + (1 - s) * mean;
      }
    }
  }
  return gx;
}
