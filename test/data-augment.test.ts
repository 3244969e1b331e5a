// Augmentation: determinism, value range, exact flips/crops, reflection fill, parameter ranges, speed.
import { describe, expect, it } from 'vitest';
import {
  type AugmentParams,
  type GraySource,
  applyAugment,
  augmentImage,
  flipHorizontal,
  flipVertical,
  identityParams,
  resizeBilinear,
  sampleAugmentParams,
} from '../src/data/augment.js';
import { Rng } from '../src/util/rng.js';

function randomImage(w: number, h: number, seed: number): GraySource & { data: Float32Array } {
  const r = new Rng(seed);
  return { width: w, height: h, data: r.uniformArray(w * h, 0, 1) };
}

describe('flips and exact transforms', () => {
  it('flipHorizontal / flipVertical mirror exactly and are involutions', () => {
    const img = randomImage(5, 3, 1);
    const h = flipHorizontal(img.data, 5, 3);
    const v = flipVertical(img.data, 5, 3);
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 5; x++) {
        expect(h[y * 5 + x]).toBe(img.data[y * 5 + 4 - x]);
        expect(v[y * 5 + x]).toBe(img.data[(2 - y) * 5 + x]);
      }
    }
    expect(Array.from(flipHorizontal(h, 5, 3))).toEqual(Array.from(img.data));
    expect(Array.from(flipVertical(v, 5, 3))).toEqual(Array.from(img.data));
  });

  it('identity params copy exactly; flip-only params equal the exact flips (Float32 and 8-bit sources)', () => {
    const S = 12;
    const img = randomImage(S, S, 2);
    const id = identityParams(S, S);
    expect(Array.from(applyAugment(img, S, id))).toEqual(Array.from(img.data));
    const fh: AugmentParams = { ...id, flipH: true };
    const fv: AugmentParams = { ...id, flipV: true };
    const both: AugmentParams = { ...id, flipH: true, flipV: true };
    expect(Array.from(applyAugment(img, S, fh))).toEqual(Array.from(flipHorizontal(img.data, S, S)));
    expect(Array.from(applyAugment(img, S, fv))).toEqual(Array.from(flipVertical(img.data, S, S)));
    expect(Array.from(applyAugment(img, S, both))).toEqual(Array.from(flipVertical(flipHorizontal(img.data, S, S), S, S)));
    const u8 = Uint8Array.from({ length: S * S }, (_, i) => (i * 37) % 256);
    const f = Float32Array.from(u8, (v) => v / 255);
    expect(Array.from(applyAugment({ width: S, height: S, data: u8 }, S, fh))).toEqual(Array.from(flipHorizontal(f, S, S)));
  });

  it('an integer-aligned half crop without rotation is the exact sub-block', () => {
    const img = randomImage(16, 16, 3);
    const p: AugmentParams = { ...identityParams(16, 16), cropW: 8, cropH: 8, cx: 6, cy: 10 };
    const out = applyAugment(img, 8, p);
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) expect(out[y * 8 + x]).toBe(img.data[(y + 6) * 16 + (x + 2)]);
  });

  it('a 90 degree rotation maps out(u, v) = src(S-1-v, u)', () => {
    const S = 9;
    const img = randomImage(S, S, 4);
    const out = applyAugment(img, S, { ...identityParams(S, S), angle: Math.PI / 2 });
    for (let v = 0; v < S; v++) for (let u = 0; u < S; u++) expect(out[v * S + u]).toBeCloseTo(img.data[u * S + (S - 1 - v)], 5);
  });

  it('writes into a batch buffer at an offset and leaves the rest alone', () => {
    const img = randomImage(10, 10, 5);
    const buf = new Float32Array(3 * 100).fill(-7);
    applyAugment(img, 10, identityParams(10, 10), buf, 100);
    expect(buf[99]).toBe(-7);
    expect(buf[200]).toBe(-7);
    expect(Array.from(buf.subarray(100, 200))).toEqual(Array.from(img.data));
  });

  it('resizeBilinear of a constant stays constant; of a ramp stays monotone', () => {
    const c = { width: 20, height: 20, data: new Float32Array(400).fill(0.3) };
    for (const v of resizeBilinear(c, 7)) expect(v).toBeCloseTo(0.3, 6);
    const ramp = { width: 20, height: 4, data: Float32Array.from({ length: 80 }, (_, i) => (i % 20) / 19) };
    const r = resizeBilinear(ramp, 5);
    for (let x = 1; x < 5; x++) expect(r[x]).toBeGreaterThan(r[x - 1]);
  });
});

describe('random augmentation', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    const img = randomImage(40, 40, 6);
    const a = augmentImage(img, 32, new Rng(11), { brightness: 0.1, contrast: 0.2 });
    const b = augmentImage(img, 32, new Rng(11), { brightness: 0.1, contrast: 0.2 });
    const c = augmentImage(img, 32, new Rng(12), { brightness: 0.1, contrast: 0.2 });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('stays in [0, 1] (Float32 and 8-bit sources, with jitter)', () => {
    const rng = new Rng(7);
    const img = randomImage(30, 30, 7);
    const u8 = { width: 30, height: 30, data: Uint8Array.from({ length: 900 }, () => rng.int(256)) };
    for (let t = 0; t < 50; t++) {
      for (const src of [img, u8]) {
        const out = augmentImage(src, 24, rng, { brightness: 0.3, contrast: 0.5 });
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of out) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        expect(lo).toBeGreaterThanOrEqual(0);
        expect(hi).toBeLessThanOrEqual(1);
      }
    }
  });

  it('rotation fills corners by reflection, not black', () => {
    const rng = new Rng(8);
    const flat = { width: 32, height: 32, data: new Float32Array(32 * 32).fill(0.7) };
    const bright = { width: 32, height: 32, data: rng.uniformArray(32 * 32, 0.4, 0.9) };
    for (let t = 0; t < 20; t++) {
      const p = { ...sampleAugmentParams(rng, 32, 32), angle: ((t % 2 ? 1 : -1) * 30 * Math.PI) / 180, cropW: 32, cropH: 32, cx: 16, cy: 16 };
      const f = applyAugment(flat, 32, p);
      expect(Math.min(...f)).toBeCloseTo(0.7, 5);
      expect(Math.max(...f)).toBeCloseTo(0.7, 5);
      const out = applyAugment(bright, 32, p);
      expect(Math.min(...out)).toBeGreaterThanOrEqual(0.4 - 1e-6);
      const edge = applyAugment(bright, 32, p, undefined, 0, 'edge');
      expect(Math.min(...edge)).toBeGreaterThanOrEqual(0.4 - 1e-6);
    }
  });

  it('brightness and contrast act about the image mean', () => {
    const img = { width: 4, height: 1, data: new Float32Array([0.4, 0.6, 0.4, 0.6]) };
    const p = { ...identityParams(4, 1), brightness: 0.1, contrast: 1.5 };
    const out = applyAugment(img, 4, { ...p, cropH: 1 }); // 4x4 output of a 4x1 source: rows repeat
    expect(out[0]).toBeCloseTo(0.35 + 0.1, 6); // mean 0.5: 0.5 + (0.4-0.5)*1.5 + 0.1
    expect(out[1]).toBeCloseTo(0.65 + 0.1, 6);
  });

  it('draws parameters within the configured ranges', () => {
    const rng = new Rng(9);
    let flipsH = 0;
    let flipsV = 0;
    const N = 2000;
    for (let t = 0; t < N; t++) {
      const p = sampleAugmentParams(rng, 100, 80);
      expect(p.cropW / 100).toBeGreaterThanOrEqual(0.8);
      expect(p.cropW / 100).toBeLessThanOrEqual(1);
      expect(p.cropH / 80).toBeCloseTo(p.cropW / 100, 10);
      expect(p.cx - p.cropW / 2).toBeGreaterThanOrEqual(-1e-9);
      expect(p.cx + p.cropW / 2).toBeLessThanOrEqual(100 + 1e-9);
      expect(Math.abs(p.angle)).toBeLessThanOrEqual((30 * Math.PI) / 180);
      expect(p.brightness).toBe(0);
      expect(p.contrast).toBe(1);
      flipsH += p.flipH ? 1 : 0;
      flipsV += p.flipV ? 1 : 0;
    }
    expect(flipsH / N).toBeGreaterThan(0.45);
    expect(flipsH / N).toBeLessThan(0.55);
    expect(flipsV / N).toBeGreaterThan(0.45);
    const off = sampleAugmentParams(new Rng(1), 10, 10, { flipH: false, flipV: false, maxRotationDeg: 0, cropScale: [1, 1] });
    expect(off).toEqual(identityParams(10, 10));
    expect(Object.is(off.angle, 0) && Object.is(off.brightness, 0)).toBe(true);
  });

  // Speed is measured in bench/, not here: a timed assertion fails on a loaded machine.
  it('augments a batch of 32 at 96x96 from 120x120 sources: every value written, finite, and the images differ', () => {
    const srcs = Array.from({ length: 32 }, (_, i) => randomImage(120, 120, 100 + i));
    const out = new Float32Array(32 * 96 * 96).fill(NaN);
    const rng = new Rng(10);
    for (let i = 0; i < 32; i++) augmentImage(srcs[i], 96, rng, { brightness: 0.1, contrast: 0.1 }, out, i * 96 * 96);
    expect(out.every(Number.isFinite)).toBe(true);
    const first = out.subarray(0, 96 * 96);
    for (let i = 1; i < 32; i++) expect(out.subarray(i * 96 * 96, (i + 1) * 96 * 96).some((v, j) => v !== first[j])).toBe(true);
  });
});
