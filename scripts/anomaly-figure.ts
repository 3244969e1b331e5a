// The docs figure of the anomaly detector: defect images, their ground-truth masks and the detector's
// anomaly maps side by side, one row per image.
//
//   npx tsx scripts/anomaly-figure.ts [--model models/magnetic-tile-anomaly] [--data ../shared/datasets/magnetic-tile]
//       [--masks ../shared/datasets/magnetic-tile-masks] [--per-class 2] [--out docs/anomaly-magnetic-tile.png]
//
// No picking: the first --per-class images (file names in code-unit order) of every defect folder.
// Each row: image | mask | map over the image (the colour scale of src/anomaly/heatmap.ts: uncoloured
// on normal surface, red at the decision threshold), with the folder, the score and the decision.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { AnomalyDetector } from '../src/anomaly/detector.js';
import { findMask } from '../src/anomaly/evaluate.js';
import { overlayRgb } from '../src/anomaly/heatmap.js';
import { isGoodFolder, scanDataset } from '../src/data/dataset.js';
import { loadGray8 } from '../src/data/images.js';
import { CELL_H, CELL_W, GAP, LABEL_H, cell, label } from './figure-cells.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/magnetic-tile-anomaly' },
    data: { type: 'string', default: '../shared/datasets/magnetic-tile' },
    masks: { type: 'string', default: '../shared/datasets/magnetic-tile-masks' },
    'per-class': { type: 'string', default: '2' },
    out: { type: 'string', default: 'docs/anomaly-magnetic-tile.png' },
  },
});


const det = await AnomalyDetector.load(args.model!);
try {
  const perClass = Number(args['per-class']);
  const scanned = await scanDataset(args.data!, 'binary', { allowSingleClass: true });
  const picked = scanned.folders.filter((f) => !isGoodFolder(f)).flatMap((f) => scanned.items.filter((it) => it.folder === f).slice(0, perClass));
  const W = 3 * CELL_W + 4 * GAP;
  const rowH = CELL_H + LABEL_H + GAP;
  const H = LABEL_H + GAP + picked.length * rowH;
  const parts: sharp.OverlayOptions[] = [{ input: label('image | ground-truth mask | anomaly map (red = at the decision threshold)', W), left: 0, top: 0 }];
  for (const [row, it] of picked.entries()) {
    const gray = await loadGray8(it.path);
    const maskPath = findMask(args.masks!, it);
    if (!maskPath) throw new Error(`no mask for ${it.path}`);
    const mask = await loadGray8(maskPath);
    const r = await det.score(it.path);
    const top = LABEL_H + GAP + row * rowH;
    parts.push({ input: label(`${it.folder}/${basename(it.path)}  score ${r.score.toFixed(2)} (threshold ${det.threshold.toFixed(2)}): ${r.isDefect ? 'defect' : 'good'}`, W), left: 0, top });
    const cells = [
      await cell(gray.data, gray.width, gray.height, 1),
      await cell(mask.data, mask.width, mask.height, 1),
      await cell(overlayRgb(gray, r.map!, det.threshold), gray.width, gray.height, 3),
    ];
    cells.forEach((c, k) => parts.push({ input: c, left: GAP + k * (CELL_W + GAP), top: top + LABEL_H }));
  }
  await sharp({ create: { width: W, height: H, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(parts)
    .png({ compressionLevel: 9 })
    .toFile(args.out!);
  console.log(`${picked.length} images -> ${args.out}`);
} finally {
  det.dispose();
}
