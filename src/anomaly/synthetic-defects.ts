// Synthetic defects drawn on real defect-free images, for choosing the scoring settings without
// looking at a single real defect. Three kinds, sized in original-image pixels and with contrasts in
// units of the image's own robust spread s = (P84 - P16) / 2:
//   spot    one dark round pit, radius 3-9 px, 2-5 s deep, soft 1.5 px rim         (a blowhole)
//   line    a dark random-walk line, 60-130 px long, 1.6-3.6 px wide, 2-4 s deep    (a crack)
//   region  a large soft-edged area, radius 25-60 px, 1.5-3 s brighter or darker     (uneven surface)
// `contrast` scales every depth and shift (0.5: half as deep) after all random draws, so a defect keeps
// its place and shape at any contrast: a fainter copy of the same defect, for a harder test (proxy.ts).
import type { GrayImage8 } from '../data/images.js';
import { segDist } from '../data/synthetic.js';
import type { Rng } from '../util/rng.js';

export const SYNTHETIC_DEFECT_KINDS = ['spot', 'line', 'region'] as const;
export type SyntheticDefectKind = (typeof SYNTHETIC_DEFECT_KINDS)[number];

function robustSpread(data: Uint8Array): number {
  const hist = new Float64Array(256);
  for (let i = 0; i < data.length; i++) hist[data[i]]++;
  const q = (f: number) => {
    let acc = 0;
    for (let v = 0; v < 256; v++) if ((acc += hist[v]) >= f * data.length) return v;
    return 255;
  };
  return Math.max((q(0.84) - q(0.16)) / 2, 1);
}

/** A copy of `img` with one synthetic defect of `kind` (see the file comment). */
export function withSyntheticDefect(img: GrayImage8, kind: SyntheticDefectKind, rng: Rng, contrast = 1): GrayImage8 {
  const { width: W, height: H } = img;
  const s = robustSpread(img.data) * contrast;
  const delta = new Float32Array(W * H);
  const margin = (r: number, n: number) => Math.min(r, n / 2);
  if (kind === 'spot') {
    const r = rng.uniform(3, 9);
    const cx = rng.uniform(margin(r + 2, W), W - margin(r + 2, W));
    const cy = rng.uniform(margin(r + 2, H), H - margin(r + 2, H));
    const depth = -rng.uniform(2, 5) * s;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
        const cov = Math.min(1, Math.max(0, (r - d) / 1.5 + 0.5));
        delta[y * W + x] = depth * cov;
      }
  } else if (kind === 'line') {
    const hw = rng.uniform(0.8, 1.8);
    const depth = -rng.uniform(2, 4) * s;
    let x = rng.uniform(0.2 * W, 0.8 * W);
    let y = rng.uniform(0.2 * H, 0.8 * H);
    let th = rng.uniform(0, 2 * Math.PI);
    const pts: [number, number][] = [[x, y]];
    const steps = 6 + rng.int(7);
    for (let k = 0; k < steps; k++) {
      th += rng.uniform(-0.5, 0.5);
      x = Math.min(W - 1, Math.max(0, x + Math.cos(th) * rng.uniform(8, 14)));
      y = Math.min(H - 1, Math.max(0, y + Math.sin(th) * rng.uniform(8, 14)));
      pts.push([x, y]);
    }
    for (let py = 0; py < H; py++)
      for (let px = 0; px < W; px++) {
        let d = Infinity;
        for (let k = 0; k + 1 < pts.length; k++) d = Math.min(d, segDist(px + 0.5, py + 0.5, pts[k][0], pts[k][1], pts[k + 1][0], pts[k + 1][1]));
        const cov = Math.min(1, Math.max(0, hw + 0.5 - d));
        delta[py * W + px] = depth * cov;
      }
  } else {
    const r = rng.uniform(25, 60);
    const cx = rng.uniform(0, W);
    const cy = rng.uniform(0, H);
    const shift = (rng.next() < 0.5 ? -1 : 1) * rng.uniform(1.5, 3) * s;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
        const t = Math.min(1, Math.max(0, (r - d) / 10 + 0.5));
        delta[y * W + x] = shift * t * t * (3 - 2 * t);
      }
  }
  const out = new Uint8Array(W * H);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(img.data[i] + delta[i])));
  return { width: W, height: H, data: out };
}
