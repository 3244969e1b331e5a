// CutPaste's pretext images (Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection and
// Localization", CVPR 2021), for training a backbone of the feature memory on good images alone
// (scripts/cutpaste-dataset.ts writes the dataset). Both kinds paste a piece of the same image's own surface,
// so the network must learn what an irregularity looks like, not a foreign texture:
//   a rectangle: 2-15 % of the patch, aspect 1:3 to 3:1, mirrored at random, brightness x 0.9-1.1;
//   a scar: a strip 1-3 px wide and 8-24 px long (at the working scale: a crack or scratch is that thin
//   there), at any angle, brightness x 0.9-1.1.
import type { Rng } from '../util/rng.js';
import type { WorkImage } from './patches.js';

/** A w x h window of img at (x, y), the last row and column repeated where the image is smaller. */
export function cropPatch(img: WorkImage, x: number, y: number, w: number, h: number): Float32Array {
  const out = new Float32Array(w * h);
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) out[r * w + c] = img.data[Math.min(y + r, img.height - 1) * img.width + Math.min(x + c, img.width - 1)];
  return out;
}

/** The side x side patch with a rectangle of img's surface pasted in (see the file comment). */
export function pasteRectangle(patch: Float32Array, side: number, img: WorkImage, rng: Rng): Float32Array {
  const out = patch.slice();
  const area = rng.uniform(0.02, 0.15) * side * side;
  const aspect = Math.exp(rng.uniform(Math.log(1 / 3), Math.log(3)));
  const w = Math.max(2, Math.min(side - 1, Math.round(Math.sqrt(area * aspect))));
  const h = Math.max(2, Math.min(side - 1, Math.round(Math.sqrt(area / aspect))));
  const src = cropPatch(img, rng.int(Math.max(1, img.width - w + 1)), rng.int(Math.max(1, img.height - h + 1)), w, h);
  const flip = rng.uniform() < 0.5;
  const gain = rng.uniform(0.9, 1.1);
  const px = rng.int(side - w + 1);
  const py = rng.int(side - h + 1);
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) out[(py + r) * side + px + c] = Math.min(1, Math.max(0, src[r * w + (flip ? w - 1 - c : c)] * gain));
  return out;
}

/** The side x side patch with a thin rotated strip of img's surface pasted in (CutPaste-Scar; see the file comment). */
export function pasteScar(patch: Float32Array, side: number, img: WorkImage, rng: Rng): Float32Array {
  const out = patch.slice();
  const width = rng.uniform(1, 3);
  const length = rng.uniform(8, 24);
  const angle = rng.uniform(0, Math.PI);
  const cols = Math.ceil(length);
  const rows = Math.ceil(width);
  const src = cropPatch(img, rng.int(Math.max(1, img.width - cols + 1)), rng.int(Math.max(1, img.height - rows + 1)), cols, rows);
  const gain = rng.uniform(0.9, 1.1);
  const cx = rng.uniform(0.15, 0.85) * side;
  const cy = rng.uniform(0.15, 0.85) * side;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  for (let r = 0; r < side; r++)
    for (let c = 0; c < side; c++) {
      // The pixel centre in the strip's own frame: u along it, v across it.
      const dx = c + 0.5 - cx;
      const dy = r + 0.5 - cy;
      const u = dx * cos + dy * sin + length / 2;
      const v = -dx * sin + dy * cos + width / 2;
      if (u < 0 || u >= length || v < 0 || v >= width) continue;
      out[r * side + c] = Math.min(1, Math.max(0, src[Math.min(rows - 1, Math.floor(v)) * cols + Math.min(cols - 1, Math.floor(u))] * gain));
    }
  return out;
}
