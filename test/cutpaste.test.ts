// CutPaste's pretext images (src/anomaly/cutpaste.ts): the crop repeats the last row and column past the
// image, a pasted rectangle is one axis-aligned block of the stated area and aspect holding the image's own
// pixels (mirrored or not) times one gain in [0.9, 1.1], and a scar is a thin strip of the stated width and
// length at some angle, holding one row of source pixels times one gain. Plain CPU code, checked on an image
// whose every pixel value says where it came from.
import { describe, expect, it } from 'vitest';
import { cropPatch, pasteRectangle, pasteScar } from '../src/anomaly/cutpaste.js';
import type { WorkImage } from '../src/anomaly/patches.js';
import { Rng } from '../src/util/rng.js';

const SIDE = 48;
/** A 90 x 70 image whose pixel (x, y) holds 0.1 + (y * 90 + x) * 1e-4: every value distinct and below 0.75. */
const W = 90;
const H = 70;
const img: WorkImage = { width: W, height: H, data: Float32Array.from({ length: W * H }, (_, i) => 0.1 + i * 1e-4), originalWidth: W, originalHeight: H };
/** A patch far from every image value (the image holds 0.1 .. 0.73), so pasted pixels stand out. */
const blank = new Float32Array(SIDE * SIDE).fill(0.95);

/** Changed pixels of a pasted patch: their coordinates and values. */
function changed(out: Float32Array): { x: number; y: number; v: number }[] {
  const px: { x: number; y: number; v: number }[] = [];
  for (let i = 0; i < out.length; i++) if (out[i] !== blank[i]) px.push({ x: i % SIDE, y: Math.floor(i / SIDE), v: out[i] });
  return px;
}

describe('CutPaste pretext images', () => {
  it('crops a window, repeating the last row and column past the image', () => {
    const p = cropPatch(img, 85, 66, 8, 6);
    for (let r = 0; r < 6; r++)
      for (let c = 0; c < 8; c++) expect(p[r * 8 + c]).toBe(img.data[Math.min(66 + r, H - 1) * W + Math.min(85 + c, W - 1)]);
    expect(cropPatch(img, 3, 4, 2, 2)).toEqual(Float32Array.from([img.data[4 * W + 3], img.data[4 * W + 4], img.data[5 * W + 3], img.data[5 * W + 4]]));
  });

  it('pastes one rectangle of 2-15 % of the patch, aspect 1:3 to 3:1, holding a block of the image times one gain', () => {
    let flipped = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const out = pasteRectangle(blank, SIDE, img, new Rng(seed));
      const px = changed(out);
      const xs = px.map((p) => p.x);
      const ys = px.map((p) => p.y);
      const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      const w = x1 - x0 + 1;
      const h = y1 - y0 + 1;
      // Every pixel of the bounding box changed: one solid rectangle.
      expect(px.length).toBe(w * h);
      // Area and aspect as drawn, up to rounding each side to whole pixels.
      expect(w * h).toBeGreaterThanOrEqual(0.02 * SIDE * SIDE * 0.8);
      expect(w * h).toBeLessThanOrEqual(0.15 * SIDE * SIDE * 1.2);
      expect(Math.max(w / h, h / w)).toBeLessThanOrEqual(3 * 1.3);
      // Source: undo the gain with the top-left pixel (mirrored: the top-right), then every pixel is the image's.
      const at = (x: number, y: number) => out[y * SIDE + x];
      const index = (v: number) => Math.round((v - 0.1) / 1e-4);
      const mirrored = at(x0 + 1, y0) < at(x0, y0);
      if (mirrored) flipped++;
      const corner = mirrored ? at(x1, y0) : at(x0, y0);
      // The gain: the ratio of two pasted pixels one source row apart fixes it; it must lie in [0.9, 1.1].
      const rowStep = (at(mirrored ? x1 : x0, y0 + 1) - corner) / (W * 1e-4);
      expect(rowStep).toBeGreaterThan(0.9 - 1e-3);
      expect(rowStep).toBeLessThan(1.1 + 1e-3);
      const src0 = index(corner / rowStep);
      for (let r = 0; r < h; r++)
        for (let c = 0; c < w; c++) {
          const want = img.data[src0 + r * W + c] * rowStep;
          expect(at(mirrored ? x1 - c : x0 + c, y0 + r)).toBeCloseTo(want, 4);
        }
    }
    // Mirroring happens, and not always.
    expect(flipped).toBeGreaterThan(5);
    expect(flipped).toBeLessThan(35);
  });

  it('pastes a scar: a strip 1-3 px wide and 8-24 px long at some angle, one source row times one gain', () => {
    const angles: number[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      const px = changed(pasteScar(blank, SIDE, img, new Rng(seed)));
      expect(px.length).toBeGreaterThan(0);
      // Its pixels lie along one line: spread along the principal axis up to 24 px, across it at most ~3 px.
      const mx = px.reduce((a, p) => a + p.x, 0) / px.length;
      const my = px.reduce((a, p) => a + p.y, 0) / px.length;
      let sxx = 0;
      let syy = 0;
      let sxy = 0;
      for (const p of px) {
        sxx += (p.x - mx) ** 2;
        syy += (p.y - my) ** 2;
        sxy += (p.x - mx) * (p.y - my);
      }
      const theta = 0.5 * Math.atan2(2 * sxy, sxx - syy);
      const along = px.map((p) => (p.x - mx) * Math.cos(theta) + (p.y - my) * Math.sin(theta));
      const across = px.map((p) => -(p.x - mx) * Math.sin(theta) + (p.y - my) * Math.cos(theta));
      expect(Math.max(...along) - Math.min(...along)).toBeLessThanOrEqual(24 + 1.5);
      expect(Math.max(...across) - Math.min(...across)).toBeLessThanOrEqual(3 + 1.5);
      // No more pixels than a 3 x 24 strip covers (with the pixels its edges graze).
      expect(px.length).toBeLessThanOrEqual(Math.ceil((3 + 1.5) * (24 + 1.5)));
      // Values: image pixels times one gain in [0.9, 1.1], all from one strip of at most 3 rows of the image.
      const lo = Math.min(...px.map((p) => p.v));
      const hi = Math.max(...px.map((p) => p.v));
      expect(lo).toBeGreaterThanOrEqual(0.1 * 0.9 - 1e-6);
      expect(hi - lo).toBeLessThanOrEqual((2 * W + 24) * 1e-4 * 1.1 + 1e-6);
      if (px.length >= 8 && Math.max(...along) - Math.min(...along) >= 8) angles.push(theta);
    }
    // Scars come at many angles (mod pi), not one.
    const spread = Math.max(...angles) - Math.min(...angles);
    expect(angles.length).toBeGreaterThan(20);
    expect(spread).toBeGreaterThan(2);
  });

  it('is deterministic in its generator and leaves the input patch untouched', () => {
    const before = blank.slice();
    expect(pasteRectangle(blank, SIDE, img, new Rng(7))).toEqual(pasteRectangle(blank, SIDE, img, new Rng(7)));
    expect(pasteScar(blank, SIDE, img, new Rng(7))).toEqual(pasteScar(blank, SIDE, img, new Rng(7)));
    expect(pasteScar(blank, SIDE, img, new Rng(7))).not.toEqual(pasteScar(blank, SIDE, img, new Rng(8)));
    expect(blank).toEqual(before);
  });
});
