// A self-supervised backbone for the anomaly detector's feature memory, from good images only
// (CutPaste: Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection and Localization",
// CVPR 2021). Writes a two-folder dataset of patches cut from an anomaly model's TRAINING good images
// (model.json data.files.train; never its validation images, which calibrate it, nor any defect image):
//
//   <out>/good/*.png       random side x side patches of the working images (the model's scale and contrast)
//   <out>/cutpaste/*.png   the same patches with a rectangle of the same image's surface pasted in
//
// `wgsl-nn train --data <out> --task binary` then trains the seed CNN to tell them apart, and
// `wgsl-nn anomaly calibrate --model <m> --backbone <that CNN>` builds the memory on its convolutions.
// The pasted rectangle covers 2-15 % of the patch, aspect 1:3 to 3:1, taken anywhere in the image,
// mirrored at random and its brightness scaled by 0.9-1.1: a local irregularity of real surface.
//
// --scar adds the paper's third class (CutPaste-Scar, its "3-way" variant):
//
//   <out>/scar/*.png       the same patches with a long thin strip of the image's surface pasted in at a
//                          random angle: 1-3 px wide, 8-24 px long at the working scale (a crack or scratch
//                          is that thin there), brightness scaled by 0.9-1.1 as the cut-paste rectangle
//
// The scars draw from their own generator (seed + 1000), so good/ and cutpaste/ are the same files with
// or without --scar. Train the 3-class set with `--task multiclass`.
//
//   npx tsx scripts/cutpaste-dataset.ts --model models/magnetic-tile-anomaly --out runs/cutpaste-data
//       [--per-image 16] [--side 48] [--seed 1] [--scar]
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readAnomalyMetadata } from '../src/anomaly/model-dir.js';
import { loadWorkImage, type WorkImage } from '../src/anomaly/patches.js';
import { writeGrayPng } from '../src/data/images.js';
import { Rng } from '../src/util/rng.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/magnetic-tile-anomaly' },
    data: { type: 'string' },
    out: { type: 'string', default: 'runs/cutpaste-data' },
    'per-image': { type: 'string', default: '16' },
    side: { type: 'string', default: '48' },
    seed: { type: 'string', default: '1' },
    scar: { type: 'boolean', default: false },
  },
});
const meta = readAnomalyMetadata(args.model!);
const root = args.data ?? meta.data?.root;
const files = meta.data?.files.train;
if (!root || !files?.length) throw new Error(`${args.model} records no training images`);
const side = Number(args.side);
const perImage = Number(args['per-image']);
const rng = new Rng(Number(args.seed));
const scarRng = new Rng(Number(args.seed) + 1000);
const folders = args.scar ? ['good', 'cutpaste', 'scar'] : ['good', 'cutpaste'];
for (const dir of folders) mkdirSync(join(args.out!, dir), { recursive: true });

/** A side x side window of img at (x, y), edges repeated where the image is smaller. */
function crop(img: WorkImage, x: number, y: number, w: number, h: number): Float32Array {
  const out = new Float32Array(w * h);
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) out[r * w + c] = img.data[Math.min(y + r, img.height - 1) * img.width + Math.min(x + c, img.width - 1)];
  return out;
}

/** The patch with a rectangle of img's surface pasted in (see the file comment). */
function cutPaste(patch: Float32Array, img: WorkImage): Float32Array {
  const out = patch.slice();
  const area = rng.uniform(0.02, 0.15) * side * side;
  const aspect = Math.exp(rng.uniform(Math.log(1 / 3), Math.log(3)));
  const w = Math.max(2, Math.min(side - 1, Math.round(Math.sqrt(area * aspect))));
  const h = Math.max(2, Math.min(side - 1, Math.round(Math.sqrt(area / aspect))));
  const src = crop(img, rng.int(Math.max(1, img.width - w + 1)), rng.int(Math.max(1, img.height - h + 1)), w, h);
  const flip = rng.uniform() < 0.5;
  const gain = rng.uniform(0.9, 1.1);
  const px = rng.int(side - w + 1);
  const py = rng.int(side - h + 1);
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) out[(py + r) * side + px + c] = Math.min(1, Math.max(0, src[r * w + (flip ? w - 1 - c : c)] * gain));
  return out;
}

/** The patch with a thin rotated strip of img's surface pasted in (CutPaste-Scar; see the file comment). */
function scar(patch: Float32Array, img: WorkImage): Float32Array {
  const out = patch.slice();
  const width = scarRng.uniform(1, 3);
  const length = scarRng.uniform(8, 24);
  const angle = scarRng.uniform(0, Math.PI);
  const cols = Math.ceil(length);
  const rows = Math.ceil(width);
  const src = crop(img, scarRng.int(Math.max(1, img.width - cols + 1)), scarRng.int(Math.max(1, img.height - rows + 1)), cols, rows);
  const gain = scarRng.uniform(0.9, 1.1);
  const cx = scarRng.uniform(0.15, 0.85) * side;
  const cy = scarRng.uniform(0.15, 0.85) * side;
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

let written = 0;
for (const [i, file] of files.entries()) {
  const img = await loadWorkImage(join(root, ...file.split('/')), { scale: meta.config.scale, contrast: meta.config.contrast });
  for (let k = 0; k < perImage; k++) {
    const patch = crop(img, rng.int(Math.max(1, img.width - side + 1)), rng.int(Math.max(1, img.height - side + 1)), side, side);
    const name = `${String(i).padStart(4, '0')}-${String(k).padStart(2, '0')}.png`;
    await writeGrayPng(join(args.out!, 'good', name), patch, side, side);
    await writeGrayPng(join(args.out!, 'cutpaste', name), cutPaste(patch, img), side, side);
    if (args.scar) await writeGrayPng(join(args.out!, 'scar', name), scar(patch, img), side, side);
    written++;
  }
}
console.log(`${written} good, ${written} cut-paste${args.scar ? ` and ${written} scar` : ''} patches of ${side} x ${side} from ${files.length} training images of ${args.model} -> ${args.out}`);
