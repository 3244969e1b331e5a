// How well the classifier's Grad-CAM heatmaps point at the defect: the defect images of the test split
// recorded in a model's model.json, against their ground-truth masks. Inference only.
//
//   npx tsx scripts/gradcam-masks.ts [--model models/magnetic-tile] [--data ../shared/datasets/magnetic-tile]
//       [--masks ../shared/datasets/magnetic-tile-masks] [--tolerance 15] [--level 0.5] [--per-class 2]
//       [--md docs/gradcam-magnetic-tile.md] [--figure docs/gradcam-magnetic-tile.png]
//
// Masks: <masks>/<folder>/<stem>.png, same size as the image, defect where mask >= 128. Masks with no
// defect pixel are skipped and listed (4 'uneven' masks of the dataset are all zero).
// Per image, on the heatmap at the image's own size (src/cnn/gradcam.ts, the defect logit):
//   pointing   the map's maximum (the centroid of the pixels attaining it, rounded) falls inside the mask,
//              exactly (tolerance 0) or within `tolerance` pixels of a mask pixel (Euclidean, image pixels;
//              15 px as in the pointing game of Zhang et al. 2016);
//   IoU        of {map >= level * max} with the mask.
// Baselines with no model: pointing at the image centre; IoU of the whole image (= the mask's area share).
// Both upsamplings are measured: receptive-field alignment (the default) and stretch.
// The figure shows the first --per-class images of each defect folder (file names in code-unit order):
// image | mask | heatmap over the image, mask outline in white, the map's maximum as a green cross.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { Inspector } from '../src/cnn/inspector.js';
import { heatmapOverlayRgb, type CamAlignment, type Heatmap } from '../src/cnn/gradcam.js';
import { isGoodFolder } from '../src/data/dataset.js';
import { loadGray8, type GrayImage8 } from '../src/data/images.js';
import { CELL_H, CELL_W, GAP, LABEL_H, cell, label } from './figure-cells.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/magnetic-tile' },
    data: { type: 'string', default: '../shared/datasets/magnetic-tile' },
    masks: { type: 'string', default: '../shared/datasets/magnetic-tile-masks' },
    tolerance: { type: 'string', default: '15' },
    level: { type: 'string', default: '0.5' },
    'per-class': { type: 'string', default: '2' },
    md: { type: 'string', default: 'docs/gradcam-magnetic-tile.md' },
    figure: { type: 'string', default: 'docs/gradcam-magnetic-tile.png' },
  },
});
const TOLERANCE = Number(args.tolerance);
const LEVEL = Number(args.level);
const ALIGNMENTS: CamAlignment[] = ['receptive-field', 'stretch'];

interface Scores {
  hit0: boolean;
  hitTol: boolean;
  iou: number;
  point: [number, number];
}

interface Row {
  rel: string;
  folder: string;
  defectProbability: number;
  calledDefect: boolean;
  maskShare: number;
  byAlignment: Record<CamAlignment, Scores>;
  centre: { hit0: boolean; hitTol: boolean };
}

/** The centroid of the pixels attaining the map's maximum. */
function peak(map: Heatmap): [number, number] {
  let max = -Infinity;
  for (const v of map.data) if (v > max) max = v;
  let sx = 0;
  let sy = 0;
  let n = 0;
  map.data.forEach((v, i) => {
    if (v === max) {
      sx += i % map.width;
      sy += Math.floor(i / map.width);
      n++;
    }
  });
  return [Math.round(sx / n), Math.round(sy / n)];
}

/** Whether a mask pixel lies within `tol` pixels (Euclidean) of (x, y). */
function nearMask(mask: Uint8Array, w: number, h: number, x: number, y: number, tol: number): boolean {
  const r = Math.ceil(tol);
  for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++)
    for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++)
      if ((xx - x) ** 2 + (yy - y) ** 2 <= tol * tol && mask[yy * w + xx]) return true;
  return false;
}

function score(map: Heatmap, mask: Uint8Array): Scores {
  const [x, y] = peak(map);
  let max = 0;
  for (const v of map.data) max = Math.max(max, v);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < mask.length; i++) {
    const p = max > 0 && map.data[i] >= LEVEL * max;
    if (p && mask[i]) inter++;
    if (p || mask[i]) union++;
  }
  return {
    hit0: nearMask(mask, map.width, map.height, x, y, 0),
    hitTol: nearMask(mask, map.width, map.height, x, y, TOLERANCE),
    iou: union ? inter / union : 0,
    point: [x, y],
  };
}

const insp = await Inspector.load(args.model!);
const rows: Row[] = [];
const skipped: string[] = [];
const figureRows: { row: Row; gray: GrayImage8; mask: Uint8Array; map: Heatmap }[] = [];
try {
  if (insp.meta.task !== 'binary') throw new Error(`${args.model} is not a binary (good/defect) model`);
  const split = insp.meta.split as { files: { test: string[] } };
  const defects = split.files.test.filter((rel) => !isGoodFolder(rel.split('/')[0]));
  const shown = new Map<string, number>();
  for (const rel of defects) {
    const folder = rel.split('/')[0];
    const stem = basename(rel).replace(/\.[^.]*$/, '');
    const gray = await loadGray8(join(args.data!, rel));
    const m = await loadGray8(join(args.masks!, folder, `${stem}.png`));
    if (m.width !== gray.width || m.height !== gray.height) throw new Error(`${rel}: mask ${m.width}x${m.height}, image ${gray.width}x${gray.height}`);
    const mask = Uint8Array.from(m.data, (v) => (v >= 128 ? 1 : 0));
    const area = mask.reduce((a, b) => a + b, 0);
    if (area === 0) {
      skipped.push(rel);
      continue;
    }
    const byAlignment = {} as Record<CamAlignment, Scores>;
    let probability = 0;
    let called = false;
    let rfMap: Heatmap | undefined;
    for (const alignment of ALIGNMENTS) {
      const r = await insp.inspect(join(args.data!, rel), { heatmap: true, heatmapAlignment: alignment });
      byAlignment[alignment] = score(r.heatmap, mask);
      probability = r.scores.defect;
      called = r.label === 'defect';
      if (alignment === 'receptive-field') rfMap = r.heatmap;
    }
    const cx = Math.floor(gray.width / 2);
    const cy = Math.floor(gray.height / 2);
    const row: Row = {
      rel,
      folder,
      defectProbability: probability,
      calledDefect: called,
      maskShare: area / mask.length,
      byAlignment,
      centre: { hit0: nearMask(mask, gray.width, gray.height, cx, cy, 0), hitTol: nearMask(mask, gray.width, gray.height, cx, cy, TOLERANCE) },
    };
    rows.push(row);
    const k = shown.get(folder) ?? 0;
    if (k < Number(args['per-class'])) {
      shown.set(folder, k + 1);
      figureRows.push({ row, gray, mask, map: rfMap! });
    }
    process.stderr.write(`${rows.length + skipped.length}/${defects.length}\r`);
  }
} finally {
  insp.dispose();
}

// ---------------------------------------------------------------- summary
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const share = (xs: boolean[]) => mean(xs.map((b) => (b ? 1 : 0)));
const pct = (v: number) => `${(100 * v).toFixed(1)} %`;
function summary(subset: Row[]) {
  const out: Record<string, { pointing0: number; pointingTol: number; iou: number }> = {};
  for (const a of ALIGNMENTS)
    out[a] = {
      pointing0: share(subset.map((r) => r.byAlignment[a].hit0)),
      pointingTol: share(subset.map((r) => r.byAlignment[a].hitTol)),
      iou: mean(subset.map((r) => r.byAlignment[a].iou)),
    };
  out.baseline = { pointing0: share(subset.map((r) => r.centre.hit0)), pointingTol: share(subset.map((r) => r.centre.hitTol)), iou: mean(subset.map((r) => r.maskShare)) };
  return out;
}
const folders = [...new Set(rows.map((r) => r.folder))].sort();
const groups: [string, Row[]][] = [
  ['all', rows],
  ...folders.map((f) => [f, rows.filter((r) => r.folder === f)] as [string, Row[]]),
  ['called defect', rows.filter((r) => r.calledDefect)],
  ['missed (called good)', rows.filter((r) => !r.calledDefect)],
];
const result = { model: args.model, tolerancePx: TOLERANCE, iouLevel: LEVEL, images: rows.length, skipped, groups: Object.fromEntries(groups.map(([g, rs]) => [g, { n: rs.length, ...summary(rs) }])), rows };
console.log(JSON.stringify(result.groups, null, 1));

// ---------------------------------------------------------------- markdown
const table = (alignment: string, iouHeader = `IoU at ${LEVEL} x max`) =>
  [
    `| images | n | pointing (exact) | pointing (<= ${TOLERANCE} px) | ${iouHeader} |`,
    '|---|---:|---:|---:|---:|',
    ...groups.map(([g, rs]) => {
      const s = summary(rs)[alignment];
      return `| ${g} | ${rs.length} | ${pct(s.pointing0)} | ${pct(s.pointingTol)} | ${s.iou.toFixed(3)} |`;
    }),
  ].join('\n');
const md = `# Grad-CAM on magnetic tile: do the heatmaps point at the defect?

Generated by \`npx tsx scripts/gradcam-masks.ts\` (inference only) for \`${args.model}\`: the ${rows.length} defect
images of the test split recorded in its model.json whose ground-truth mask has a defect pixel
(${skipped.length} skipped because the mask has no defect pixel${skipped.length ? `: ${skipped.join(', ')}` : ''}; the dataset has 4 such 'uneven'
masks). Masks: \`${args.masks}\`, defect where mask >= 128. 'called defect' / 'missed' split the images by
the model's decision at its stored threshold.

Heatmaps: Grad-CAM of the defect logit at the ReLU output of the third conv block (28 x 28 cells at the
model's 128 px input), channel weights = spatial mean of the gradient, ReLU, divided by the maximum,
upsampled bilinearly to the image's own size (src/cnn/gradcam.ts).

- **pointing**: the map's maximum (the centroid of the pixels attaining it) falls inside the mask (exact),
  or within ${TOLERANCE} image pixels of a mask pixel (the tolerance of the pointing game of Zhang et al. 2016).
- **IoU**: the map thresholded at ${LEVEL} of its maximum against the mask, mean over images.
- **baseline** (no model): pointing at the image centre; IoU of the whole image (the mask's area share).

## Receptive-field alignment (the default: each cell at the centre of its receptive field)

${table('receptive-field')}

## Stretch (cells spread evenly over the image, the usual Grad-CAM upsampling)

${table('stretch')}

## Baseline: image centre / whole image

${table('baseline', 'IoU of the whole image')}

## Figure

![Grad-CAM on magnetic-tile test defects](${basename(args.figure!)})

\`${basename(args.figure!)}\`: the first ${args['per-class']} test-split defect images of each folder (file names in
code-unit order, no picking): image | ground-truth mask | heatmap over the image (jet colours, opacity
grows with the map), the mask's outline in white and the map's maximum as a green cross.

## Per image

| image | P(defect) | decision | mask share | pointing exact / tol (rf) | IoU (rf) | pointing exact / tol (stretch) | IoU (stretch) |
|---|---:|---|---:|---|---:|---|---:|
${rows
  .map((r) => {
    const a = r.byAlignment['receptive-field'];
    const b = r.byAlignment.stretch;
    const yn = (v: boolean) => (v ? 'yes' : 'no');
    return `| ${r.rel} | ${r.defectProbability.toFixed(3)} | ${r.calledDefect ? 'defect' : 'good'} | ${pct(r.maskShare)} | ${yn(a.hit0)} / ${yn(a.hitTol)} | ${a.iou.toFixed(3)} | ${yn(b.hit0)} / ${yn(b.hitTol)} | ${b.iou.toFixed(3)} |`;
  })
  .join('\n')}
`;
mkdirSync(dirname(args.md!), { recursive: true });
writeFileSync(args.md!, md);

// ---------------------------------------------------------------- figure

/** The overlay with the mask's outline in white and a green cross at the map's maximum. */
function annotated(gray: GrayImage8, mask: Uint8Array, map: Heatmap, point: [number, number]): Uint8Array {
  const rgb = heatmapOverlayRgb(gray, map);
  const { width: w, height: h } = gray;
  const set = (x: number, y: number, c: [number, number, number]) => {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    rgb.set(c, 3 * (y * w + x));
  };
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      if (!mask[y * w + x]) continue;
      const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !mask[y * w + x - 1] || !mask[y * w + x + 1] || !mask[(y - 1) * w + x] || !mask[(y + 1) * w + x];
      if (edge) set(x, y, [255, 255, 255]);
    }
  const arm = Math.max(4, Math.round(Math.max(w, h) / 40));
  const t = Math.max(1, Math.round(arm / 4));
  for (let d = -arm; d <= arm; d++)
    for (let e = -t; e <= t; e++) {
      set(point[0] + d, point[1] + e, [0, 255, 0]);
      set(point[0] + e, point[1] + d, [0, 255, 0]);
    }
  return rgb;
}

const W = 3 * CELL_W + 4 * GAP;
const rowH = CELL_H + LABEL_H + GAP;
const parts: sharp.OverlayOptions[] = [{ input: label('image | ground-truth mask | Grad-CAM of the defect logit (white: mask outline, green: map maximum)', W), left: 0, top: 0 }];
for (const [i, f] of figureRows.entries()) {
  const top = LABEL_H + GAP + i * rowH;
  const a = f.row.byAlignment['receptive-field'];
  parts.push({
    input: label(`${f.row.rel}  P(defect) ${f.row.defectProbability.toFixed(2)}: ${f.row.calledDefect ? 'defect' : 'good'}  pointing ${a.hitTol ? 'hit' : 'miss'}  IoU ${a.iou.toFixed(2)}`, W),
    left: 0,
    top,
  });
  const cells = [
    await cell(f.gray.data, f.gray.width, f.gray.height, 1),
    await cell(Uint8Array.from(f.mask, (v) => v * 255), f.gray.width, f.gray.height, 1),
    await cell(annotated(f.gray, f.mask, f.map, a.point), f.gray.width, f.gray.height, 3),
  ];
  cells.forEach((c, k) => parts.push({ input: c, left: GAP + k * (CELL_W + GAP), top: top + LABEL_H }));
}
mkdirSync(dirname(args.figure!), { recursive: true });
await sharp({ create: { width: W, height: LABEL_H + GAP + figureRows.length * rowH, channels: 3, background: { r: 255, g: 255, b: 255 } } })
  .composite(parts)
  .png({ compressionLevel: 9 })
  .toFile(args.figure!);
console.error(`${rows.length} images (${skipped.length} skipped: all-zero masks) -> ${args.md}, ${args.figure}`);
