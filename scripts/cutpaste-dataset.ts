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
//   npx tsx scripts/cutpaste-dataset.ts --model models/magnetic-tile-anomaly --out runs/cutpaste-data
//       [--per-image 16] [--side 48] [--seed 1]
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
  },
});
const meta = readAnomalyMetadata(args.model!);
const root = args.data ?? meta.data?.root;
const files = meta.data?.files.train;
if (!root || !files?.length) throw new Error(`${args.model} records no training images`);
const side = Number(args.side);
const perImage = Number(args['per-image']);
const rng = new Rng(Number(args.seed));
for (const dir of ['good', 'cutpaste']) mkdirSync(join(args.out!, dir), { recursive: true });

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

let written = 0;
for (const [i, file] of files.entries()) {
  const img = await loadWorkImage(join(root, ...file.split('/')), { scale: meta.config.scale, contrast: meta.config.contrast });
  for (let k = 0; k < perImage; k++) {
    const patch = crop(img, rng.int(Math.max(1, img.width - side + 1)), rng.int(Math.max(1, img.height - side + 1)), side, side);
    const name = `${String(i).padStart(4, '0')}-${String(k).padStart(2, '0')}.png`;
    await writeGrayPng(join(args.out!, 'good', name), patch, side, side);
    await writeGrayPng(join(args.out!, 'cutpaste', name), cutPaste(patch, img), side, side);
    written++;
  }
}
console.log(`${written} good and ${written} cut-paste patches of ${side} x ${side} from ${files.length} training images of ${args.model} -> ${args.out}`);
