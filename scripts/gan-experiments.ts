// The GAN experiments of the README, reproducible from one command each (npx tsx scripts/gan-experiments.ts ...):
//
//   tstr    Train-on-synthetic, test-on-real: the seed CNN trained only on a GAN's images of every class,
//           evaluated on the real test split of a reference classifier (e.g. models/neu); the reference's
//           own accuracy on that split beside it.
//   scarce  The scarce-data augmentation experiment: n real images per class (n in --sizes); a GAN trained
//           on exactly those images (no other real image); then the CNN trained, per seed, (a) with
//           classic augmentation alone, (b) with GAN samples added to the pool, (c) with GAN samples in
//           balanced batches (half real, half generated); accuracy on the full test split, mean ± std.
//
// Every run uses split seed 1 (the shipped models' split), so the test split is the same everywhere
// and no test image reaches a GAN or a CNN. Results go to --out (JSON) and a markdown table (--doc).
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { Engine } from '../src/gpu/engine.js';
import { loadTuned } from '../src/kernels/tuning-cache.js';
import { evaluateModel } from '../src/cnn/evaluate.js';
import { trainClassifier, type TrainOptions } from '../src/cnn/train.js';
import { readModelMetadata } from '../src/cnn/model-dir.js';
import { loadClassifierFilter } from '../src/gan/classifier-filter.js';
import { loadGanSampler, readGanSamplerMeta } from '../src/gan/mixture.js';
import { recomputeGeneratorStatistics, writeSampleFolders } from '../src/gan/samples.js';
import { trainGan } from '../src/gan/train.js';
import { scoreGan } from '../src/gan/score.js';
import { writeCurvesPng } from '../src/eval/plots.js';

const SPLIT_SEED = 1;

/** The CNN recipe of models/neu (README), with fewer epochs where stated. */
function cnnOptions(epochs: number, inputSize = 64): Partial<TrainOptions> {
  return { task: 'multiclass', inputSize, batchSize: 32, lr: 1e-3, lrSchedule: 'cosine', normalize: 'image', epochs, splitSeed: SPLIT_SEED };
}

/** A folder of links to one of the reference model's split parts (test or val), one sub-folder per class; returns its files (class/file). */
function materialiseSplit(reference: string, part: 'test' | 'val', data: string, out: string): string[] {
  const meta = readModelMetadata(reference);
  const files = (meta.split as { files?: Record<string, string[]> } | undefined)?.files?.[part];
  if (!files?.length) throw new Error(`${reference}/model.json records no ${part} split`);
  rmSync(out, { recursive: true, force: true });
  for (const f of files) {
    const target = join(out, f);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(resolve(data, f), target);
  }
  return files;
}

/** 'class/file.png' of a path (the part that names an image of a class-per-folder dataset). */
const classAndFile = (f: string) => `${basename(dirname(f))}/${basename(f)}`;

/**
 * TSTR judges the generator on the reference classifier's test images, so the GAN must not have trained on
 * any of them. One trained with another split does (`gan train --seed s` also seeds the
 * split unless --split-seed is given): refused, naming the images, rather than reported as a result.
 */
function checkGanSplit(gan: string, ganData: unknown, held: { part: string; files: string[] }[]): void {
  const trained = (ganData as { files?: string[] } | undefined)?.files;
  if (!trained) throw new Error(`${gan}/model.json records no training files: cannot check that the GAN never saw the real test images`);
  const seen = new Set(trained.map(classAndFile));
  for (const { part, files } of held) {
    const leaked = files.filter((f) => seen.has(classAndFile(f)));
    if (leaked.length)
      throw new Error(
        `${gan} trained on ${leaked.length} of the ${files.length} real ${part} images TSTR evaluates on (e.g. ${leaked.slice(0, 3).join(', ')}): ` +
          `its split differs from the reference classifier's (train it with --split-seed as the classifier's split, e.g. --split-seed 1)`,
      );
  }
}

function samplingLabel(s: { truncation?: number; filterWith?: string; minConfidence?: number; standingStats?: number }): string {
  const parts = [
    s.standingStats !== undefined ? `standing statistics (${s.standingStats} batches)` : '',
    s.truncation !== undefined ? `truncation ${s.truncation}` : '',
    s.filterWith ? `filtered by ${s.filterWith} (p >= ${s.minConfidence}; not a pure TSTR)` : '',
  ].filter(Boolean);
  return parts.length ? `, ${parts.join(', ')}` : '';
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const std = (v: number[]) => (v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean(v)) ** 2, 0) / (v.length - 1)) : 0);
const pct = (v: number) => `${(100 * v).toFixed(1)} %`;

async function withEngine<T>(fn: (e: Engine) => Promise<T>): Promise<T> {
  const engine = await Engine.create();
  loadTuned(engine);
  try {
    return await fn(engine);
  } finally {
    engine.destroy();
  }
}

const program = new Command();

program
  .command('tstr')
  .requiredOption('--gan <dir>', 'GAN model directory (class-conditional, or any with the classes of --data): one generator, or a mixture of several (`wgsl-nn gan mix`)')
  .option('--data <dir>', 'real dataset', '../shared/datasets/neu')
  .option('--reference <dir>', 'classifier whose recorded test split is used (and whose accuracy is shown beside)', 'models/neu')
  .option('--per-class <n>', 'generated training images per class', (v) => Number(v), 300)
  .option('--epochs <n>', 'CNN epochs', (v) => Number(v), 25)
  .option('--size <px>', "the CNN's input size (64: the models/neu recipe; real images are resized to it as the generated ones are)", (v) => Number(v), 64)
  .option('--seeds <list>', 'CNN seeds', '1')
  .option('--truncation <t>', 'sample with the truncation trick (|z| <= t)', (v) => Number(v))
  .option('--filter-with <classifier>', 'rejection-sample: keep the samples this classifier assigns to their class (not a pure TSTR then)')
  .option('--min-confidence <p>', 'with --filter-with', (v) => Number(v), 0.5)
  .option('--max-draw-factor <f>', 'with --filter-with: draws per written image before giving up on a class', (v) => Number(v), 20)
  .option('--standing-stats <batches>', "recompute the generator's BatchNorm statistics from this many noise batches first (for a --ema generator)", (v) => Number(v))
  .option('--out <dir>', 'work folder', 'runs/tstr')
  .option('--doc <file>', 'markdown table to write', 'docs/tstr.md')
  .action(async (o) => {
    await withEngine(async (engine) => {
      const testDir = join(o.out, 'real-test');
      const testFiles = materialiseSplit(o.reference, 'test', o.data, testDir);
      const nTest = testFiles.length;
      // The real validation split (seen by a GAN trained on train + val, never by the TSTR CNN): the
      // figure to choose sampling settings by, so that the test split chooses nothing.
      const valDir = join(o.out, 'real-val');
      const valFiles = materialiseSplit(o.reference, 'val', o.data, valDir);
      const nVal = valFiles.length;
      const reference = await evaluateModel(o.reference, testDir, { engine });
      // Several generators were once a comma-separated list here, each drawn from its own noise stream into
      // one folder; a mixture directory (`wgsl-nn gan mix`) now does that job everywhere, with the split checks.
      if (String(o.gan).includes(','))
        throw new Error(`--gan ${o.gan}: several generators are one mixture directory now: \`wgsl-nn gan mix --members ${o.gan} --out <dir>\`, then --gan <dir>`);
      const meta = readGanSamplerMeta(o.gan);
      // (The validation images are the GAN's own training images by design: its split is the classifier's.)
      checkGanSplit(o.gan, meta.data, [{ part: 'test', files: testFiles }]);
      const sampling = {
        truncation: o.truncation as number | undefined,
        filterWith: o.filterWith as string | undefined,
        minConfidence: o.filterWith ? (o.minConfidence as number) : undefined,
        standingStats: o.standingStats as number | undefined,
      };
      const rows: { seed: number; accuracy: number; macroF1: number; valAccuracy: number; acceptance?: Record<string, number>; perClassRecall: Record<string, number> }[] = [];
      for (const seed of String(o.seeds).split(',').map(Number)) {
        const samples = join(o.out, `samples-${seed}`);
        rmSync(samples, { recursive: true, force: true });
        const acceptance: Record<string, number> = {};
        const { generator } = loadGanSampler(o.gan, engine);
        const classifier = o.filterWith ? loadClassifierFilter(o.filterWith, generator, o.minConfidence, engine) : undefined;
        const filter = classifier?.filter;
        try {
          if (o.standingStats !== undefined) recomputeGeneratorStatistics(generator, o.standingStats, seed);
          await writeSampleFolders(generator, samples, o.perClass, seed, {
            truncation: o.truncation, filter, maxDrawFactor: o.maxDrawFactor, onClass: (c, accepted, drawn) => (acceptance[c] = accepted / drawn),
          });
        } finally {
          generator.dispose();
          classifier?.dispose();
        }
        const model = join(o.out, `cnn-${seed}`);
        // Trained on generated images only: 80 % for training, 20 % (generated) for model selection, no test split.
        await trainClassifier({ ...cnnOptions(o.epochs, o.size), data: samples, out: model, seed, testFraction: 0, valFraction: 0.2, engine, log: console.error } as TrainOptions);
        const v = await evaluateModel(model, valDir, { engine });
        const r = await evaluateModel(model, testDir, { engine });
        rows.push({ seed, accuracy: r.accuracy, macroF1: r.macroF1, valAccuracy: v.accuracy, acceptance: filter ? acceptance : undefined, perClassRecall: Object.fromEntries(Object.entries(r.perClass).map(([c, m]) => [c, m.recall])) });
        console.error(`TSTR seed ${seed}: accuracy ${pct(v.accuracy)} on ${nVal} real validation images, ${pct(r.accuracy)} on ${nTest} real test images`);
      }
      const result = { gan: o.gan, ganClasses: meta.classes, perClass: o.perClass, epochs: o.epochs, cnnInputSize: o.size, sampling, testImages: nTest, valImages: nVal, reference: { model: o.reference, accuracy: reference.accuracy, macroF1: reference.macroF1 }, rows };
      mkdirSync(o.out, { recursive: true });
      writeFileSync(join(o.out, 'tstr.json'), JSON.stringify(result, null, 2) + '\n');
      const acc = rows.map((r) => r.accuracy);
      const lines = [
        `| training data | test data | accuracy | macro F1 | accuracy on the real validation split (${nVal}) |`,
        `|---|---|---:|---:|---:|`,
        `| real (${o.reference}) | real test split, ${nTest} images | ${pct(reference.accuracy)} | ${reference.macroF1.toFixed(3)} | (its training selected on it) |`,
        `| generated only: ${o.perClass} per class from ${o.gan}${samplingLabel(sampling)}${o.size !== 64 ? `, CNN at ${o.size} px` : ''} (${rows.length} seed${rows.length > 1 ? 's' : ''}) | same | ${pct(mean(acc))}${rows.length > 1 ? ` ± ${pct(std(acc))}` : ''} | ${mean(rows.map((r) => r.macroF1)).toFixed(3)} | ${pct(mean(rows.map((r) => r.valAccuracy)))} |`,
        '',
        ...(o.filterWith ? [`Filter acceptance per class (mean over seeds): ${meta.classes.map((c) => `${c} ${pct(mean(rows.map((r) => r.acceptance?.[c] ?? NaN)))}`).join(', ')}`, ''] : []),
        `Per-class recall (TSTR, mean over seeds): ${meta.classes.map((c) => `${c} ${pct(mean(rows.map((r) => r.perClassRecall[c] ?? NaN)))}`).join(', ')}`,
      ];
      mkdirSync(dirname(o.doc), { recursive: true });
      writeFileSync(o.doc, lines.join('\n') + '\n');
      console.log(lines.join('\n'));
    });
  });

program
  .command('scarce')
  .option('--data <dir>', 'real dataset', '../shared/datasets/neu')
  .option('--sizes <list>', 'real images per class', '10,20,50')
  .option('--seeds <list>', 'CNN seeds', '1,2,3,4,5')
  .option('--gan-iterations <n>', 'GAN iterations per size (epochs follow from the subset size)', (v) => Number(v), 600)
  .option('--gan-width <n>', 'DCGAN ngf = ndf', (v) => Number(v), 16)
  .option('--ratio <r>', 'generated images per real image', (v) => Number(v), 2)
  .option('--cnn-steps <n>', 'optimizer steps per CNN run, the same for every condition (epochs follow from the pool size)', (v) => Number(v), 200)
  .option('--conditions <list>', 'which of classic, gan-pool, gan-balanced to run', 'classic,gan-pool,gan-balanced')
  .option('--out <dir>', 'work folder', 'runs/scarce')
  .option('--doc <file>', 'markdown table to write', 'docs/scarce-data.md')
  .action(async (o) => {
    await withEngine(async (engine) => {
      const sizes = String(o.sizes).split(',').map(Number);
      const seeds = String(o.seeds).split(',').map(Number);
      const resultsFile = join(o.out, 'scarce.json');
      // Resumable: finished runs are kept in the JSON and skipped.
      const results: Record<string, number> = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : {};
      const save = () => {
        mkdirSync(o.out, { recursive: true });
        writeFileSync(resultsFile, JSON.stringify(results, null, 2) + '\n');
      };
      const classCount = readdirSync(o.data, { withFileTypes: true }).filter((d) => d.isDirectory()).length;
      // Every GAN first, then seed by seed, so a run stopped early leaves every cell with the same seeds.
      for (const n of sizes) {
        const gan = join(o.out, `gan-${n}`);
        const batchSize = Math.min(64, classCount * n);
        const epochs = Math.ceil(o.ganIterations / Math.ceil((classCount * n) / batchSize));
        if (!existsSync(join(gan, 'history.json')))
          await trainGan({ data: o.data, out: gan, arch: 'dcgan', ngf: o.ganWidth, ndf: o.ganWidth, limitPerClass: n, splitSeed: SPLIT_SEED, seed: 1, epochs, batchSize, sampleEvery: Math.ceil(epochs / 10), resume: true, engine, log: console.error });
      }
      const batchSize = 32;
      // Images per epoch: the real subset, plus ratio x as many generated (pool), or real and generated alternating (balanced).
      const perEpoch = { classic: 1, 'gan-pool': 1 + o.ratio, 'gan-balanced': 2 } as const;
      const conditions = String(o.conditions).split(',') as (keyof typeof perEpoch)[];
      for (const c of conditions) if (!(c in perEpoch)) throw new Error(`unknown condition '${c}' (classic, gan-pool, gan-balanced)`);
      for (const seed of seeds)
        for (const n of sizes)
          for (const condition of conditions) {
            const key = `${n}/${condition}/${seed}`;
            if (key in results) continue;
            const stepsPerEpoch = Math.ceil((perEpoch[condition] * classCount * n) / batchSize);
            const r = await trainClassifier({
              ...cnnOptions(Math.ceil(o.cnnSteps / stepsPerEpoch)),
              data: o.data,
              out: join(o.out, `cnn-${n}-${condition}-${seed}`),
              seed,
              limitPerClass: n,
              augmentWith: condition === 'classic' ? undefined : join(o.out, `gan-${n}`),
              syntheticRatio: o.ratio,
              syntheticSampling: condition === 'gan-balanced' ? 'balanced' : 'pool',
              engine,
              log: () => {},
            } as TrainOptions);
            results[key] = r.test!.accuracy;
            save();
            console.error(`${key}: test accuracy ${pct(results[key])} (${new Date().toISOString()})`);
          }
      const lines = [
        `Each CNN: ${o.cnnSteps} optimizer steps of batch 32 (the models/neu recipe otherwise); GANs: ${o.ganIterations} iterations, ngf = ndf = ${o.ganWidth}; test accuracy on the test split of split seed ${SPLIT_SEED}, mean ± std over seeds.`,
        '',
        `| real images per class | classic augmentation | + GAN samples (pool, ratio ${o.ratio}) | + GAN samples (balanced batches) |`,
        `|---:|---:|---:|---:|`,
      ];
      for (const n of sizes) {
        const cell = (c: string) => {
          const v = seeds.map((s) => results[`${n}/${c}/${s}`]).filter((x) => x !== undefined);
          return v.length ? `${pct(mean(v))} ± ${pct(std(v))} (${v.length} seeds)` : '-';
        };
        lines.push(`| ${n} | ${cell('classic')} | ${cell('gan-pool')} | ${cell('gan-balanced')} |`);
      }
      mkdirSync(dirname(o.doc), { recursive: true });
      writeFileSync(o.doc, lines.join('\n') + '\n');
      console.log(lines.join('\n'));
    });
  });

program
  .command('curve')
  .description("FD on the test split for every snapshot of a GAN run (the metric over training)")
  .requiredOption('--run <dir>', 'GAN output folder with snapshots/epoch-NNNN')
  .option('--data <dir>', 'real dataset', '../shared/datasets/neu')
  .option('--classifier <dir>', 'feature classifier', 'models/neu')
  .option('--test-split', "score against the GAN's held-out test split only (about 45 images per class on NEU: noisy); default all images of --data")
  .option('--png <file>', 'plot to write', 'docs/gan-fd-over-training.png')
  .option('--doc <file>', 'markdown table to write', 'docs/gan-fd-over-training.md')
  .action(async (o) => {
    await withEngine(async (engine) => {
      const snapDir = join(o.run, 'snapshots');
      const snaps = readdirSync(snapDir).filter((d) => /^epoch-\d+$/.test(d)).sort();
      if (!snaps.length) throw new Error(`no snapshots in ${snapDir}`);
      const rows: { epoch: number; fd: number; floor: number }[] = [];
      for (const s of snaps) {
        const r = await scoreGan({ model: join(snapDir, s), data: o.data, classifier: o.classifier, testSplit: !!o.testSplit, engine, kidSubsets: 20 });
        rows.push({ epoch: Number(s.slice(6)), fd: r.meanFd, floor: r.meanFloorFd });
        console.error(`${s}: mean FD ${r.meanFd.toFixed(1)} (floor ${r.meanFloorFd.toFixed(1)})`);
      }
      await writeCurvesPng(o.png, [{ name: `GAN vs real (${o.testSplit ? 'test split' : 'all images'})`, values: rows.map((r) => r.fd) }, { name: 'real vs real floor', values: rows.map((r) => r.floor) }], {
        title: `Fréchet distance over training (${o.run})`,
        yLabel: 'mean FD over classes',
        xLabel: `snapshot: epochs ${rows.map((r) => r.epoch).join(', ')}`,
        yMin: 0,
      });
      const lines = [`| epoch | mean FD (GAN vs real, ${o.testSplit ? 'test split' : 'all images'}) | real-vs-real floor |`, '|---:|---:|---:|', ...rows.map((r) => `| ${r.epoch} | ${r.fd.toFixed(1)} | ${r.floor.toFixed(1)} |`)];
      writeFileSync(o.doc, lines.join('\n') + '\n');
      console.log(lines.join('\n'));
    });
  });

await program.parseAsync(process.argv);
