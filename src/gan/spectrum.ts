// How periodic a set of generated images is, beside real ones: the power spectrum's excess on the grid of
// frequencies a chain of stride-2 upsamplings from 4x4 can leave behind (multiples of S/16 cycles per image:
// periods of 16, 8, 4 and 2 px at 64 px; Odena et al., "Deconvolution and Checkerboard Artifacts", 2016).
//
// meanPowerSpectrum: per image, pixels standardised (mean 0, std 1), |2-D DFT|^2 (a plain O(S^3) separable
// DFT, float64), averaged over the set. gridExcess: at each grid frequency (u, v) != (0, 0) of half the plane,
// P(u, v) / the mean of P at its four neighbours (u +- 1, v), (u, v +- 1), which lie off the grid; a smooth
// spectrum gives ~1 everywhere, a pattern of that period a peak. Used by `gan score` (score.ts) and
// scripts/gan-spectrum.ts.

/** Mean power spectrum [S * S] (row v, column u) of `n` standardised S x S images. */
export function meanPowerSpectrum(x: Float32Array, n: number, S: number): Float64Array {
  const cos = new Float64Array(S * S);
  const sin = new Float64Array(S * S);
  for (let k = 0; k < S; k++)
    for (let t = 0; t < S; t++) {
      cos[k * S + t] = Math.cos((2 * Math.PI * k * t) / S);
      sin[k * S + t] = -Math.sin((2 * Math.PI * k * t) / S);
    }
  const P = new Float64Array(S * S);
  const img = new Float64Array(S * S);
  const re1 = new Float64Array(S * S); // rows transformed: [y][u]
  const im1 = new Float64Array(S * S);
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (let p = 0; p < S * S; p++) mean += x[i * S * S + p];
    mean /= S * S;
    let v = 0;
    for (let p = 0; p < S * S; p++) v += (x[i * S * S + p] - mean) ** 2;
    const sd = Math.sqrt(v / (S * S)) || 1;
    for (let p = 0; p < S * S; p++) img[p] = (x[i * S * S + p] - mean) / sd;
    for (let y = 0; y < S; y++)
      for (let u = 0; u < S; u++) {
        let re = 0;
        let im = 0;
        for (let t = 0; t < S; t++) {
          re += img[y * S + t] * cos[u * S + t];
          im += img[y * S + t] * sin[u * S + t];
        }
        re1[y * S + u] = re;
        im1[y * S + u] = im;
      }
    for (let vv = 0; vv < S; vv++)
      for (let u = 0; u < S; u++) {
        let re = 0;
        let im = 0;
        for (let y = 0; y < S; y++) {
          const c = cos[vv * S + y];
          const s = sin[vv * S + y];
          re += re1[y * S + u] * c - im1[y * S + u] * s;
          im += re1[y * S + u] * s + im1[y * S + u] * c;
        }
        P[vv * S + u] += (re * re + im * im) / n;
      }
  }
  return P;
}

/** The geometric mean of the excess over the grid, and the largest ones (u signed, v >= 0). */
export interface GridExcess {
  geometricMean: number;
  top: { u: number; v: number; excess: number }[];
}

/** Whether S has the grid gridExcess reads: a multiple of 16, at least 32 (so grid points have off-grid neighbours). */
export function hasUpsamplingGrid(S: number): boolean {
  return S >= 32 && S % 16 === 0;
}

/** The excess at every grid frequency of half the plane, summarised (see the file comment). */
export function gridExcess(P: Float64Array, S: number): GridExcess {
  if (!hasUpsamplingGrid(S)) throw new RangeError(`gridExcess: image size ${S} is not a multiple of 16 of at least 32`);
  const step = S / 16;
  const at = (u: number, v: number) => P[(((v % S) + S) % S) * S + (((u % S) + S) % S)];
  const all: { u: number; v: number; excess: number }[] = [];
  // Half the plane (the spectrum of a real image is symmetric): v in [0, S/2], u in [0, S).
  for (let v = 0; v <= S / 2; v += step)
    for (let u = 0; u < S; u += step) {
      if (u === 0 && v === 0) continue;
      if (v === 0 && u > S / 2) continue;
      if (v === S / 2 && u > S / 2) continue;
      const around = (at(u + 1, v) + at(u - 1, v) + at(u, v + 1) + at(u, v - 1)) / 4;
      all.push({ u: u > S / 2 ? u - S : u, v, excess: at(u, v) / around });
    }
  const geometricMean = Math.exp(all.reduce((s, e) => s + Math.log(e.excess), 0) / all.length);
  return { geometricMean, top: all.sort((a, b) => b.excess - a.excess).slice(0, 4) };
}
