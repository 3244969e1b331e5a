// How periodic a set of images is: the power spectrum's excess on the grid of frequencies that a chain of
// stride-2 upsamplings from 4x4 to the image size can leave behind (multiples of S/16 cycles per image, i.e.
// periods of 16, 8, 4 and 2 px at 64 px), generated images beside the real ones the GAN trained on.
//
//   npx tsx scripts/gan-spectrum.ts --gan models/neu-gan,runs/neu-gan-r22 [--per-class 100] [--doc file.md]
//
// The measure is src/gan/spectrum.ts's. The real images are the GAN's own training images (train + validation
// parts of its split), resized the way it saw them.
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { assembleBatch } from '../src/data/batch.js';
import { prepareDataset } from '../src/data/prepare.js';
import { Engine } from '../src/gpu/engine.js';
import { loadGanSampler } from '../src/gan/mixture.js';
import { generateImages } from '../src/gan/samples.js';
import { Rng } from '../src/util/rng.js';
import { gridExcess, meanPowerSpectrum, type GridExcess } from '../src/gan/spectrum.js';

const program = new Command()
  .requiredOption('--gan <dirs>', 'GAN model directories, comma-separated')
  .option('--data <dir>', 'the real dataset the GANs trained on', '../shared/datasets/neu')
  .option('--per-class <n>', 'generated images per class', (v) => Number.parseInt(v, 10), 100)
  .option('--seed <n>', 'noise seed', (v) => Number.parseInt(v, 10), 1)
  .option('--doc <file>', 'markdown table to write')
  .action(async (o: { gan: string; data: string; perClass: number; seed: number; doc?: string }) => {
    const engine = await Engine.create();
    try {
      const dirs = o.gan.split(',').map((s) => s.trim());
      const first = loadGanSampler(dirs[0], engine);
      const { classes, imageSize: S, data } = first.meta;
      const split = data as { splitSeed?: number; testFraction?: number; valFraction?: number };
      const prepared = await prepareDataset(o.data, 'multiclass', { size: S, seed: split.splitSeed ?? 1, test: split.testFraction ?? 0.2, val: split.valFraction ?? 0.2 });
      const rows: string[] = [];
      const line = (name: string, e: GridExcess) =>
        `| ${name} | ${e.geometricMean.toFixed(2)} | ${e.top.map((t) => `(${t.u}, ${t.v}) ${t.excess.toFixed(1)}`).join(', ')} |`;
      // Real images: the train + validation parts of the GAN's split, un-augmented, as it saw them.
      const indices = [...prepared.split.train, ...prepared.split.val];
      const { x: real } = await assembleBatch(prepared.cache, prepared.labels, indices);
      rows.push(line(`real (${indices.length} training images of the split)`, gridExcess(meanPowerSpectrum(real, indices.length, S), S)));
      for (const dir of dirs) {
        const { generator, meta } = dir === dirs[0] ? first : loadGanSampler(dir, engine);
        if (meta.classes.join() !== classes.join() || meta.imageSize !== S) throw new Error(`${dir}: classes or image size differ from ${dirs[0]}`);
        const labels = Int32Array.from({ length: classes.length * o.perClass }, (_, i) => Math.floor(i / o.perClass));
        const x = await generateImages(generator, labels, new Rng(o.seed));
        rows.push(line(`${dir} (${labels.length} samples)`, gridExcess(meanPowerSpectrum(x, labels.length, S), S)));
      }
      const table = [
        `| images | grid excess, geometric mean | largest (u, v) excess |`,
        `|---|---:|---|`,
        ...rows,
      ].join('\n');
      console.log(table);
      if (o.doc) writeFileSync(o.doc, `Command: \`npx tsx scripts/gan-spectrum.ts ${process.argv.slice(2).join(' ')}\`\n\n${table}\n`);
    } finally {
      engine.destroy();
    }
  });

await program.parseAsync();
