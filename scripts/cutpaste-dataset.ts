// A self-supervised backbone for the anomaly detector's feature memory, from good images only
// (CutPaste: Li et al., CVPR 2021; the pasting itself is src/anomaly/cutpaste.ts). Writes a dataset of patches
// cut from an anomaly model's TRAINING good images (model.json data.files.train; never its validation images,
// which calibrate it, nor any defect image):
//
//   <out>/good/*.png       random side x side patches of the working images (the model's scale and contrast)
//   <out>/cutpaste/*.png   the same patches with a rectangle of the same image's surface pasted in
//   <out>/scar/*.png       with --scar (the paper's "3-way" task): the same patches with a thin strip pasted in
//
// `wgsl-nn train --data <out> --task binary` (3-way: `--task multiclass`) then trains the seed CNN to tell
// them apart, and `wgsl-nn anomaly calibrate --model <m> --backbone <that CNN>` builds the memory on its
// convolutions. The scars draw from their own generator (seed + 1000), so good/ and cutpaste/ are the same
// files with or without --scar.
//
//   npx tsx scripts/cutpaste-dataset.ts --model models/magnetic-tile-anomaly --out runs/cutpaste-data
//       [--per-image 16] [--side 48] [--seed 1] [--scar]
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readAnomalyMetadata } from '../src/anomaly/model-dir.js';
import { cropPatch, pasteRectangle, pasteScar } from '../src/anomaly/cutpaste.js';
import { loadWorkImage } from '../src/anomaly/patches.js';
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

let written = 0;
for (const [i, file] of files.entries()) {
  const img = await loadWorkImage(join(root, ...file.split('/')), { scale: meta.config.scale, contrast: meta.config.contrast });
  for (let k = 0; k < perImage; k++) {
    const patch = cropPatch(img, rng.int(Math.max(1, img.width - side + 1)), rng.int(Math.max(1, img.height - side + 1)), side, side);
    const name = `${String(i).padStart(4, '0')}-${String(k).padStart(2, '0')}.png`;
    await writeGrayPng(join(args.out!, 'good', name), patch, side, side);
    await writeGrayPng(join(args.out!, 'cutpaste', name), pasteRectangle(patch, side, img, rng), side, side);
    if (args.scar) await writeGrayPng(join(args.out!, 'scar', name), pasteScar(patch, side, img, scarRng), side, side);
    written++;
  }
}
console.log(`${written} good, ${written} cut-paste${args.scar ? ` and ${written} scar` : ''} patches of ${side} x ${side} from ${files.length} training images of ${args.model} -> ${args.out}`);
