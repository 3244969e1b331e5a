// CPU reference for spectral normalisation (Miyato et al. 2018) as torch.nn.utils.spectral_norm computes
// it, float64, written from torch's definition: W viewed as [rows, cols]; each power step
// v = normalize(Wᵀu), u = normalize(W v) with normalize(x) = x / max(|x|, eps); then sigma = uᵀ (W v)
// and the output W / sigma. The gradient treats u and v as constants:
// dL/dW = g / sigma - (sum(g ∘ W) / sigma²) u vᵀ.

export interface SpectralNormRef {
  u: Float64Array;
  v: Float64Array;
  sigma: number;
  /** W / sigma, [rows * cols]. */
  normalized: Float64Array;
}

function normalizeRef(x: Float64Array, eps: number): Float64Array<ArrayBuffer> {
  let ss = 0;
  for (const a of x) ss += a * a;
  const d = Math.max(Math.sqrt(ss), eps);
  return Float64Array.from(x, (a) => a / d);
}

/** `steps` power steps from (u, v) (steps 0: u and v as given), sigma and W / sigma. */
export function spectralNormRef(
  w: ArrayLike<number>,
  rows: number,
  cols: number,
  u0: ArrayLike<number>,
  v0: ArrayLike<number>,
  steps: number,
  eps: number,
): SpectralNormRef {
  let u: Float64Array<ArrayBuffer> = Float64Array.from(u0);
  let v: Float64Array<ArrayBuffer> = Float64Array.from(v0);
  const Wv = (vec: Float64Array) => {
    const out = new Float64Array(rows);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i] += w[i * cols + j] * vec[j];
    return out;
  };
  for (let s = 0; s < steps; s++) {
    const wtu = new Float64Array(cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) wtu[j] += w[i * cols + j] * u[i];
    v = normalizeRef(wtu, eps);
    u = normalizeRef(Wv(v), eps);
  }
  const wv = Wv(v);
  let sigma = 0;
  for (let i = 0; i < rows; i++) sigma += u[i] * wv[i];
  const normalized = Float64Array.from({ length: rows * cols }, (_, k) => w[k] / sigma);
  return { u, v, sigma, normalized };
}

/** dL/dW of W / sigma for the output gradient g, with u, v (and so sigma = uᵀ W v) held constant. */
export function spectralNormBackwardRef(
  w: ArrayLike<number>,
  g: ArrayLike<number>,
  u: ArrayLike<number>,
  v: ArrayLike<number>,
  sigma: number,
): Float64Array {
  const rows = u.length;
  const cols = v.length;
  let gw = 0;
  for (let k = 0; k < rows * cols; k++) gw += g[k] * w[k];
  const dw = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) dw[i * cols + j] = g[i * cols + j] / sigma - (gw / (sigma * sigma)) * u[i] * v[j];
  return dw;
}
