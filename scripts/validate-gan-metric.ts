// Does the classifier-feature FD/KID rank image quality correctly? Scores real images against
// increasingly degraded real images (Gaussian blur, Gaussian noise) beside the real-vs-real floor.
//
//   npx tsx scripts/validate-gan-metric.ts [--model models/neu] [--data ../shared/datasets/neu]
//       [--per-class N] [--seed 0] [--subsets 100] [--out docs/gan-metric-validation.md]
//
// The real images are split into two disjoint random halves A and B. The floor is FD/KID(A, B); each
// degraded row is FD/KID(A, degrade(B)), so every number uses the same sample sizes and only the
// degradation differs. A metric users can trust puts the floor lowest and grows with the degradation.
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Engine } from '../src/gpu/engine.js';
import { loadTuned } from '../src/kernels/tuning-cache.js';
import { loadModelDir } from '../src/cnn/model-dir.js';
import { scanDataset } from '../src/data/dataset.js';
import { decodeImage, type GrayImage } from '../src/data/images.js';
import { mixSeed } from '../src/data/split.js';
import {
  addNoise,
  blur,
  extractFeaturesFromImages,
  frechetDistance,
  kernelInceptionDistance,
  realFloor,
  selectRows,
} from '../src/gan/quality.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/neu' },
    data: { type: 'string', default: '../shared/datasets/neu' },
    'per-class': { type: 'string' },
    seed: { type: 'string', default: '0' },
    subsets: { type: 'string', default: '100' },
    out: { type: 'string' },
  },
});
const seed = Number(args.seed);
const subsets = Number(args.subsets);
const perClass = args['per-class'] === undefined ? Infinity : Number(args['per-class']);

const started = performance.now();
const engine = await Engine.create();
loadTuned(engine);
const { model, meta } = loadModelDir(args.model, engine);
const size = meta.inputSize;
const fit = meta.preprocessing?.resize ?? 'fill';

const scanned = await scanDataset(args.data, 'multiclass');
const taken = new Map<string, number>();
const items = scanned.items.filter((it) => {
  const k = taken.get(it.folder) ?? 0;
  taken.set(it.folder, k + 1);
  return k < perClass;
});
const images: GrayImage[] = [];
for (const it of items) images.push({ width: size, height: size, data: await decodeImage(it.path, { size, fit, name: it.rel }) });

const features = (imgs: GrayImage[]) => extractFeaturesFromImages(model, imgs, { fit });
const real = await features(images);
const floor = realFloor(real, { seed, kid: { subsets, seed } });
const halfA = selectRows(real, floor.halves.a);
let sqNorm = 0;
for (const v of real.data) sqNorm += v * v;
const kernelScale = sqNorm / real.n / real.d; // mean x.x / d: where the cubic kernel (x.y / d + 1)^3 operates
const imagesB = floor.halves.b.map((i) => images[i]);

const degradations: { name: string; apply: (img: GrayImage, i: number) => GrayImage }[] = [
  ...[0.5, 1, 2].map((s) => ({ name: `blur sigma ${s} px`, apply: (img: GrayImage) => blur(img, s) })),
  ...[0.05, 0.1, 0.2].map((s) => ({ name: `noise std ${s}`, apply: (img: GrayImage, i: number) => addNoise(img, s, mixSeed(seed, i)) })),
];

interface Row {
  name: string;
  fd: number;
  kidMean: number;
  kidStd: number;
}
const rows: Row[] = [{ name: 'real (floor: half A vs half B)', fd: floor.fd, kidMean: floor.kid.mean, kidStd: floor.kid.std }];
for (const d of degradations) {
  const f = await features(imagesB.map((img, i) => d.apply(img, i)));
  const kid = kernelInceptionDistance(halfA, f, { subsets, seed });
  rows.push({ name: d.name, fd: frechetDistance(halfA, f), kidMean: kid.mean, kidStd: kid.std });
}
model.dispose();
engine.destroy();
const seconds = (performance.now() - started) / 1000;

const fmt = (v: number) => (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(3) : v.toFixed(1));
const lines = [
  `Model: \`${args.model}\` (${meta.classes.length} classes, ${size}x${size}, normalize '${model.config.normalize}'), features: ${real.d}-wide penultimate ReLU layer.`,
  `Data: \`${args.data}\`, ${images.length} real images (${[...taken.keys()].map((c) => `${c} ${Math.min(taken.get(c)!, perClass)}`).join(', ')}), decoded to ${size}x${size} ('${fit}').`,
  `Split seed ${seed}: two disjoint random halves A and B of ${floor.halfSize} images; every row is A against B, B degraded as named.`,
  `KID: ${subsets} subsets of ${floor.kid.subsetSize} images per set, mean ± std (ddof 0). Degradations at ${size}x${size} on [0, 1] pixels; noise clipped to [0, 1].`,
  `Feature scale: mean x.x / d = ${kernelScale.toFixed(1)}, so the kernel (x.y / d + 1)^3 is large and KID values are large in absolute terms: read them against the floor row only.`,
  '',
  '| B is | FD | FD / floor | KID (mean ± std) |',
  '|---|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${fmt(r.fd)} | ${(r.fd / floor.fd).toFixed(2)} | ${fmt(r.kidMean)} ± ${fmt(r.kidStd)} |`),
  '',
  `(${seconds.toFixed(0)} s on ${engine.describe()})`,
];
const text = lines.join('\n');
console.log(text);
if (args.out) {
  const doc = [
    '# GAN quality metric: validation on NEU',
    '',
    'FD (Fréchet distance) and KID (kernel distance, Binkowski et al. 2018) on the penultimate-layer features of the',
    "shipped NEU classifier (`src/gan/quality.ts`). Real images against increasingly degraded real images, beside the",
    'real-vs-real floor at the same sample size. Produced by:',
    '',
    '```',
    `npx tsx scripts/validate-gan-metric.ts ${process.argv.slice(2).join(' ')}`.trim(),
    '```',
    '',
    text,
    '',
    '## Reading it',
    '',
    '- The floor row is what a generator indistinguishable from the real data would score with this many images;',
    '  a generated-vs-real number means something only next to it (FD / floor column), measured at the same size',
    '  (score a generated set of the half size against one real half: `realFloor(...).halves`).',
    "- FD's floor is above 0 because FD is biased upwards at small n (a 128x128 covariance from hundreds of images);",
    "  KID's mean is unbiased (the floor's mean is near 0, within its std) but it is noisy at this size.",
    '- The classifier was trained on most of these images (this copy of NEU is its train/val/test pool), which does',
    '  not matter for ranking degradations but would for judging a generator that memorised the training set.',
    '',
  ].join('\n');
  writeFileSync(args.out, doc);
}
