// The anomaly detector's CPU parts: threshold at a false-alarm rate, binned pixel ROC-AUC against the
// exact rank statistic, patch grids, map assembly, smoothing, resampling, standardisation, top-k.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findMask } from '../src/anomaly/evaluate.js';
import { heatLevel } from '../src/anomaly/heatmap.js';
import { jet } from '../src/eval/heat-overlay.js';
import { flaggedShare, PixelAuroc, thresholdAtFalseAlarmRate } from '../src/anomaly/metrics.js';
import { extractPatch, gaussianBlur, gridPositions, MapAccumulator, patchGrid, randomPatches, resizeBilinear, standardize8 } from '../src/anomaly/patches.js';
import { averageWithMirror, edgeDistance, edgeProfile, mirrorMap, topKMean } from '../src/anomaly/scorer.js';
import { rocAuc } from '../src/eval/metrics.js';
import { Rng } from '../src/util/rng.js';

describe('thresholdAtFalseAlarmRate', () => {
  it('lets at most the given share of good scores exceed it', () => {
    const scores = Array.from({ length: 57 }, (_, i) => ((i * 37) % 57) + 0.5); // a permutation of 0.5 .. 56.5
    const t = thresholdAtFalseAlarmRate(scores, 0.05);
    // ceil(57 * 0.95) = 55: the 55th smallest, 54.5; two scores (55.5, 56.5) are above it = 3.5 %.
    expect(t).toBe(54.5);
    expect(flaggedShare(scores, t)).toBeCloseTo(2 / 57, 12);
    expect(thresholdAtFalseAlarmRate([3, 1, 2, 4], 0)).toBe(4);
    expect(thresholdAtFalseAlarmRate([3, 1, 2, 4], 0.25)).toBe(3);
    expect(thresholdAtFalseAlarmRate([3, 1, 2, 4], 0.3)).toBe(3);
  });
  it('rejects an empty list and rates outside [0, 1)', () => {
    expect(() => thresholdAtFalseAlarmRate([], 0.05)).toThrow(/without good images/);
    expect(() => thresholdAtFalseAlarmRate([1], 1)).toThrow(/false-alarm rate/);
  });
});

describe('PixelAuroc', () => {
  it('matches the exact rank-sum ROC-AUC within the binning error on 200k pixels', () => {
    const r = new Rng(5);
    const n = 200_000;
    const map = new Float32Array(n);
    const mask = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const pos = r.next() < 0.03;
      mask[i] = pos ? 255 : r.next() < 0.01 ? 7 : 0; // stray low mask values are background
      map[i] = Math.exp(r.normal() * 0.8 + (pos ? 0.9 : 0));
    }
    const acc = new PixelAuroc();
    acc.add(map.subarray(0, 120_000), mask.subarray(0, 120_000));
    acc.add(map.subarray(120_000), mask.subarray(120_000));
    const exact = rocAuc(Array.from(mask, (m) => (m >= 128 ? 1 : 0)), map);
    expect(exact).toBeGreaterThan(0.7);
    expect(Math.abs(acc.auroc()! - exact)).toBeLessThan(2e-4);
    expect(acc.positives + acc.negatives).toBe(n);
  });
  it('counts ties as one half, and is null without both kinds of pixel', () => {
    const acc = new PixelAuroc();
    acc.add([1, 1, 2, 0.5], [255, 0, 0, 0]);
    expect(acc.auroc()).toBeCloseTo((0.5 + 0 + 1) / 3, 12);
    const none = new PixelAuroc();
    none.add([1, 2], [0, 0]);
    expect(none.auroc()).toBeNull();
    expect(() => none.add([1], [0, 0])).toThrow(/map of 1 pixels, mask of 2/);
  });
});

describe('patch grid and maps', () => {
  it('grid positions step by the stride and end flush with the edge', () => {
    expect(gridPositions(70, 32, 16)).toEqual([0, 16, 32, 38]);
    expect(gridPositions(64, 32, 16)).toEqual([0, 16, 32]);
    expect(gridPositions(32, 32, 16)).toEqual([0]);
    expect(gridPositions(20, 32, 16)).toEqual([0]);
    const g = patchGrid(70, 40, 32, 16);
    expect(g.length).toBe(4 * 2);
    expect(g[5]).toEqual({ x: 16, y: 8 });
  });

  it('extracts patches (flipped, and repeating the border beyond a small image)', () => {
    const img = { width: 3, height: 2, data: Float32Array.from([1, 2, 3, 4, 5, 6]) };
    const out = new Float32Array(16);
    extractPatch(img, 0, 0, 4, out, 0);
    expect(Array.from(out)).toEqual([1, 2, 3, 3, 4, 5, 6, 6, 4, 5, 6, 6, 4, 5, 6, 6]);
    const big = { width: 5, height: 5, data: Float32Array.from({ length: 25 }, (_, i) => i) };
    const f = new Float32Array(4);
    extractPatch(big, 1, 2, 2, f, 0, { h: true, v: true });
    expect(Array.from(f)).toEqual([17, 16, 12, 11]);
    const rp = randomPatches([big], 3, 2, new Rng(1));
    expect(rp.length).toBe(12);
    expect(Array.from(rp).every((v) => Number.isInteger(v) && v >= 0 && v < 25)).toBe(true);
    // All on the grid (stride 3 on 5 px: origins 0 and 3), unflipped: every patch's first pixel is one of the grid origins.
    const onGrid = randomPatches([big], 40, 2, new Rng(2), { flips: false, gridShare: 1, stride: 3 });
    for (let i = 0; i < 40; i++) expect([0, 3, 15, 18]).toContain(onGrid[i * 4]);
  });

  it('averages overlapping patch maps', () => {
    const acc = new MapAccumulator(3, 2);
    acc.add([1, 1, 1, 1], 0, 0, 0, 2);
    acc.add([3, 3, 3, 3], 0, 1, 0, 2);
    acc.add([9, 9, 9, 9], 0, 2, 1, 2); // half outside: only (2, 1) lands
    expect(Array.from(acc.result())).toEqual([1, 2, 3, 1, 2, (3 + 9) / 2]);
  });

  it('blurs (constant maps stay constant, mass is kept, sigma 0 copies) and resamples bilinearly', () => {
    const c = new Float32Array(7 * 5).fill(2.5);
    for (const v of gaussianBlur(c, 7, 5, 1.3)) expect(v).toBeCloseTo(2.5, 5);
    const d = new Float32Array(31 * 31);
    d[15 * 31 + 15] = 1;
    const b = gaussianBlur(d, 31, 31, 2);
    expect(b.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
    expect(b[15 * 31 + 15]).toBeCloseTo(1 / (2 * Math.PI * 4), 2);
    expect(b[15 * 31 + 17]).toBeLessThan(b[15 * 31 + 16]);
    expect(Array.from(gaussianBlur(d, 31, 31, 0))).toEqual(Array.from(d));
    // 2x2 -> 4x4: corners keep their values, the middle interpolates (align_corners = False).
    const up = resizeBilinear([0, 1, 2, 3], 2, 2, 4, 4);
    expect(up[0]).toBe(0);
    expect(up[15]).toBe(3);
    expect(up[1]).toBeCloseTo(0.25, 6);
    expect(up[5]).toBeCloseTo(0.75, 6);
    expect(Array.from(resizeBilinear([1, 2, 3, 4, 5, 6], 3, 2, 3, 2))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('standardises per image by median and robust spread, clamped to [0, 1]', () => {
    const px = Uint8Array.from({ length: 105 }, (_, i) => 100 + (i % 21) - 10); // 90..110 five times each: median 100
    const s = standardize8(px, 3);
    const i100 = px.indexOf(100);
    expect(s[i100]).toBeCloseTo(0.5, 6);
    expect(s[px.indexOf(110)]).toBeGreaterThan(0.5);
    const spiked = px.slice();
    spiked[0] = 0;
    spiked[1] = 255;
    const t = standardize8(spiked, 3);
    expect(t[0]).toBe(0);
    expect(t[1]).toBe(1);
    expect(t[i100]).toBeCloseTo(0.5, 6); // two outliers do not move the centre
  });

  it('edge distance, edge profile (quantile per band, small bands borrowing the previous) and mirror averaging', () => {
    expect(edgeDistance(0, 5, 10, 10, 3)).toBe(0);
    expect(edgeDistance(8, 5, 10, 10, 3)).toBe(1);
    expect(edgeDistance(5, 5, 10, 10, 3)).toBe(3);
    // 30x30 maps whose value is 10 - distance to the edge (capped at 4): band d holds only the value 10 - d.
    const map = Float32Array.from({ length: 900 }, (_, i) => 10 - edgeDistance(i % 30, Math.floor(i / 30), 30, 30, 4));
    expect(edgeProfile([{ width: 30, height: 30, map }], 5, 0.99)).toEqual([10, 9, 8, 7, 6]);
    // Two 12x12 maps: rings at distance 0 and 1 have 88 and 72 pixels, the inner ones fewer than 64: they borrow band 1's level.
    const small = Float32Array.from({ length: 144 }, (_, i) => 1 + edgeDistance(i % 12, Math.floor(i / 12), 12, 12, 5));
    const prof = edgeProfile([{ width: 12, height: 12, map: small }, { width: 12, height: 12, map: small }], 6, 0.5);
    expect(prof).toEqual([1, 2, 2, 2, 2, 2]);
    expect(Array.from(mirrorMap(Float32Array.from([1, 2, 3, 4, 5, 6]), 3, 2))).toEqual([3, 2, 1, 6, 5, 4]);
    const plain = { width: 2, height: 1, pixel: Float32Array.from([1, 3]), feature: Float32Array.from([0, 2]) };
    const mirrored = { width: 2, height: 1, pixel: Float32Array.from([5, 7]), feature: Float32Array.from([4, 6]) };
    const avg = averageWithMirror(plain, mirrored);
    expect(Array.from(avg.pixel)).toEqual([4, 4]);
    expect(Array.from(avg.feature)).toEqual([3, 3]);
  });

  it('top-k mean', () => {
    expect(topKMean([1, 5, 3, 4], 1)).toBe(5);
    expect(topKMean([1, 5, 3, 4], 2)).toBe(4.5);
    expect(topKMean([1, 5, 3, 4], 99)).toBe(3.25);
  });
});

describe('heatmap colours and mask lookup', () => {
  it('maps low values to no colour and the threshold to the hot end', () => {
    expect(heatLevel(0.1, 10)).toBe(0);
    expect(heatLevel(12.5, 10)).toBe(1);
    expect(heatLevel(8, 10)).toBeGreaterThan(heatLevel(6, 10));
    expect(jet(0)).toEqual([0, 0, 0.5]);
    expect(jet(1)).toEqual([0.5, 0, 0]);
  });
  it('finds a mask by folder and stem with any image extension', () => {
    const root = mkdtempSync(join(tmpdir(), 'wgsl-nn-masks-'));
    try {
      mkdirSync(join(root, 'crack'));
      writeFileSync(join(root, 'crack', 'a.png'), 'x');
      expect(findMask(root, { folder: 'crack', path: '/data/crack/a.jpg' })).toBe(join(root, 'crack', 'a.png'));
      expect(findMask(root, { folder: 'crack', path: '/data/crack/b.png' })).toBeNull();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
