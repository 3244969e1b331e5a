// The periodic-artifact measure (src/gan/spectrum.ts): the mean power spectrum against a direct float64
// O(S^4) DFT written from the definition, Parseval's identity, and the grid excess on images whose answer is
// known: white noise (flat spectrum: excess ~1) and the same noise with a faint checkerboard or a period-4
// pattern added (a peak at (S/2, S/2), or at S/4).
import { describe, expect, it } from 'vitest';
import { gridExcess, meanPowerSpectrum } from '../src/gan/spectrum.js';
import { Rng } from '../src/util/rng.js';

/** |DFT|^2 of one standardised S x S image, straight from the definition, at (u, v). */
function directPower(img: Float64Array, S: number, u: number, v: number): number {
  let re = 0;
  let im = 0;
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) {
      const a = (-2 * Math.PI * (u * x + v * y)) / S;
      re += img[y * S + x] * Math.cos(a);
      im += img[y * S + x] * Math.sin(a);
    }
  return re * re + im * im;
}

function standardise(x: Float32Array, S: number): Float64Array {
  const m = x.reduce((a, b) => a + b, 0) / (S * S);
  const sd = Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / (S * S));
  return Float64Array.from(x, (v) => (v - m) / sd);
}

function noiseImages(n: number, S: number, seed: number, pattern?: (x: number, y: number) => number): Float32Array {
  const r = new Rng(seed);
  const out = new Float32Array(n * S * S);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) out[(i * S + y) * S + x] = r.normal() + (pattern ? pattern(x, y) : 0);
  return out;
}

describe('meanPowerSpectrum', () => {
  it('equals the direct DFT of the standardised images, averaged (S 16, two images), and keeps Parseval', () => {
    const S = 16;
    const x = noiseImages(2, S, 3, (px, py) => 0.3 * Math.sin(px * 0.7) + 0.1 * py);
    const P = meanPowerSpectrum(x, 2, S);
    const imgs = [standardise(x.subarray(0, S * S), S), standardise(x.subarray(S * S), S)];
    let worst = 0;
    for (let v = 0; v < S; v++)
      for (let u = 0; u < S; u++) {
        const ref = (directPower(imgs[0], S, u, v) + directPower(imgs[1], S, u, v)) / 2;
        worst = Math.max(worst, Math.abs(P[v * S + u] - ref));
      }
    expect(worst).toBeLessThan(1e-9 * S ** 4);
    // Parseval: sum |F|^2 = S^2 * sum x^2 = S^4 for a standardised image; the mean keeps it.
    expect(P.reduce((a, b) => a + b, 0)).toBeCloseTo(S ** 4, 6);
    expect(P[0]).toBeLessThan(1e-9); // mean 0: no power at (0, 0)
  });
});

describe('gridExcess', () => {
  const S = 32;
  const n = 40;
  it('is ~1 for white noise, and peaks where a faint periodic pattern is', () => {
    const flat = gridExcess(meanPowerSpectrum(noiseImages(n, S, 1), n, S), S);
    expect(flat.geometricMean).toBeGreaterThan(0.85);
    expect(flat.geometricMean).toBeLessThan(1.15);
    expect(flat.top[0].excess).toBeLessThan(2);

    // A checkerboard of amplitude 0.2 (4 % of the noise's power) is period 2 in both axes: (S/2, S/2).
    const checker = gridExcess(meanPowerSpectrum(noiseImages(n, S, 1, (x, y) => ((x + y) % 2 ? 0.2 : -0.2)), n, S), S);
    expect(checker.top[0]).toMatchObject({ u: S / 2, v: S / 2 });
    expect(checker.top[0].excess).toBeGreaterThan(20);

    // Vertical stripes of period 4 (a cosine along x): a peak at (S/4, 0).
    const stripes = gridExcess(meanPowerSpectrum(noiseImages(n, S, 1, (x) => 0.3 * Math.cos((2 * Math.PI * x) / 4)), n, S), S);
    expect(stripes.top[0]).toMatchObject({ u: S / 4, v: 0 });
    expect(stripes.top[0].excess).toBeGreaterThan(20);
    expect(stripes.geometricMean).toBeGreaterThan(flat.geometricMean);
  });

  it('refuses a size without off-grid neighbours', () => {
    expect(() => gridExcess(new Float64Array(16 * 16), 16)).toThrow(/image size 16 is not a multiple of 16 of at least 32/);
    expect(() => gridExcess(new Float64Array(40 * 40), 40)).toThrow(RangeError);
  });
});
