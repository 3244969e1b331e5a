#!/usr/bin/env node
// wgsl-nn command line: train, eval, inspect, demo, selfcheck.
import { mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { WgslNnError } from './gpu/errors.js';
import { trainClassifier, type TrainOptions } from './cnn/train.js';
import { evaluateModel, formatOperatingPoints } from './cnn/evaluate.js';
import { Inspector } from './cnn/inspector.js';
import { calibrateModelDir, parseOperatingPoint, type DecisionRates } from './cnn/calibration.js';
import { writeHeatmapPng } from './cnn/gradcam.js';
import { formatReport } from './eval/metrics.js';
import { TrainingProgress } from './train/progress.js';
import { generateSynthetic } from './data/synthetic.js';
import { loadGray8 } from './data/images.js';
import { runSelfCheck } from './selfcheck.js';
import { registerGanCommands } from './gan/cli.js';
import { registerAnomalyCommands } from './anomaly/cli.js';
import { registerServeCommand } from './serve/cli.js';
import { collectImages, commandLine, int, num, withEngine } from './cli-common.js';
import type { AugmentOptions } from './data/augment.js';

const operatingPoint = (v: string) => {
  try {
    return parseOperatingPoint(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};
const pct = (v: number) => `${(100 * v).toFixed(1)} %`;
const describeRates = (r: DecisionRates) =>
  `good called good ${pct(r.goodRecall)} (${r.good - r.falseAlarms}/${r.good}), defect recall ${pct(r.defectRecall)} (${r.defect - r.missed}/${r.defect})`;

function progressCallbacks(epochs: number, quiet: boolean): Pick<TrainOptions, 'onEpochStart' | 'onBatch' | 'onEpochEnd' | 'log'> {
  const bar = new TrainingProgress({
    epochs,
    fields: [
      { key: 'loss', label: 'loss', digits: 4 },
      { key: 'accuracy', label: 'acc', digits: 3 },
    ],
    enabled: process.stderr.isTTY && !quiet,
  });
  return {
    log: (line) => console.error(line),
    onEpochStart: (epoch, batches) => bar.start(epoch, batches),
    onBatch: (b) => bar.update(b.batch, { loss: b.loss, accuracy: b.accuracy }, b.imagesPerSecond),
    onEpochEnd: (r, improved) => {
      bar.stop();
      console.error(
        `epoch ${r.epoch}/${epochs}: train loss ${r.trainLoss.toFixed(4)} acc ${r.trainAccuracy.toFixed(3)} | ` +
          `val loss ${r.valLoss.toFixed(4)} acc ${r.valAccuracy.toFixed(3)} | ${r.imagesPerSecond.toFixed(1)} img/s, ${r.seconds.toFixed(1)} s${improved ? ' *best' : ''}`,
      );
    },
  };
}

/** Augmentation from the CLI flags: only the options given override the defaults. */
function augmentOptions(opts: Record<string, any>): false | AugmentOptions {
  if (opts.augment === false) return false;
  const a: AugmentOptions = {};
  if (opts.cropScale !== undefined) a.cropScale = [opts.cropScale, 1];
  if (opts.maxRotation !== undefined) a.maxRotationDeg = opts.maxRotation;
  return a;
}

async function train(opts: Record<string, any>, extra: Partial<TrainOptions> = {}): Promise<void> {
  await withEngine(async (engine) => {
    console.error(`adapter: ${engine.describe()}`);
    const epochs = opts.epochs as number;
    const result = await trainClassifier({
      data: opts.data,
      task: opts.task,
      out: opts.out,
      inputSize: opts.size,
      epochs,
      batchSize: opts.batchSize,
      lr: opts.lr,
      lrSchedule: opts.lrSchedule,
      seed: opts.seed,
      augment: augmentOptions(opts),
      patience: opts.patience,
      resume: opts.resume,
      onBadImage: opts.onBadImage,
      fit: opts.fit,
      normalize: opts.normalize,
      channels: opts.channels,
      padding: opts.padding,
      testFraction: opts.testFraction,
      valFraction: opts.valFraction,
      splitSeed: opts.splitSeed,
      augmentWith: opts.augmentWith,
      syntheticRatio: opts.syntheticRatio,
      syntheticSampling: opts.syntheticSampling,
      limitPerClass: opts.limitPerClass,
      operatingPoint: opts.operatingPoint,
      initFrom: opts.initFrom,
      testTimeFlips: opts.testTimeFlips,
      engine,
      command: commandLine(),
      ...progressCallbacks(epochs, opts.quiet),
      ...extra,
    });
    if (result.test) {
      console.log(`\nTest split (${result.test.count} images never used for training or model selection):`);
      console.log(formatReport(result.test));
    }
    if (result.decision)
      console.log(
        `\ndecision threshold ${result.decision.threshold.toFixed(4)} (${result.decision.operatingPoint} on the validation split; defect when P(defect) >= it)` +
          (result.decision.test ? `\n  test split at it: ${describeRates(result.decision.test)}` : ''),
      );
    console.log(`\nbest epoch ${result.bestEpoch}; ${result.imagesPerSecond.toFixed(1)} images/s; ${result.seconds.toFixed(0)} s in all`);
    console.log(`model:   ${resolve(result.modelDir)} (model.safetensors + model.json)`);
    console.log(`report:  ${resolve(result.modelDir, 'report.json')}`);
    console.log(`plots:   ${['loss.png', 'accuracy.png', 'confusion.png'].map((f) => resolve(result.modelDir, f)).join(', ')}`);
  });
}


/** <dir>/<image name without extension>.heatmap.png, with -2, -3, ... when two images share a name. */
function heatmapFile(dir: string, image: string, taken: Set<string>): string {
  const stem = basename(image).replace(/\.[^.]*$/, '');
  let file = join(dir, `${stem}.heatmap.png`);
  for (let k = 2; taken.has(file); k++) file = join(dir, `${stem}-${k}.heatmap.png`);
  taken.add(file);
  return file;
}

const program = new Command();
program.name('wgsl-nn').description('Surface-defect inspection on WebGPU: hand-written WGSL kernels, no ML framework.').version('0.1.0');

program
  .command('train')
  .description('train the seed CNN on a dataset folder (class-per-folder, or good/defect with --task binary)')
  .requiredOption('--data <dir>', 'dataset root: one sub-folder per class')
  .addOption(new Option('--task <task>', 'multiclass: every folder a class; binary: good/free/ok/normal vs the rest').choices(['multiclass', 'binary']).default('multiclass'))
  .requiredOption('--out <dir>', 'model directory to write')
  .option('--size <px>', 'input size (square)', int('--size'), 64)
  .option('--epochs <n>', 'epochs', int('--epochs'), 20)
  .option('--batch-size <n>', 'batch size', int('--batch-size'), 32)
  .option('--lr <lr>', 'Adam learning rate', num('--lr'), 1e-3)
  .addOption(new Option('--lr-schedule <s>', 'constant, or cosine decay over the epochs').choices(['constant', 'cosine']).default('constant'))
  .option('--seed <n>', 'seed of split, init, shuffling and augmentation', int('--seed'), 1)
  .option('--split-seed <n>', 'seed of the split alone (default --seed)', int('--split-seed'))
  .option('--patience <n>', 'early stop after n epochs without a better validation result', int('--patience'))
  .option('--test-fraction <f>', 'fraction of each class held out for the test split', num('--test-fraction'), 0.2)
  .option('--val-fraction <f>', 'fraction of the rest used for validation', num('--val-fraction'), 0.2)
  .option('--no-augment', 'disable random crop / rotation / flips')
  .option('--crop-scale <min>', 'random crops keep this fraction of the side or more (default 0.8; 1 = no crop)', num('--crop-scale'))
  .option('--max-rotation <deg>', 'random rotation within +-deg (default 30)', num('--max-rotation'))
  .addOption(new Option('--fit <fit>', 'how non-square images become square').choices(['fill', 'cover']).default('fill'))
  .addOption(new Option('--normalize <how>', "standardise inputs by the training set's statistics, or each image by its own").choices(['dataset', 'image']).default('dataset'))
  .option('--channels <a,b,c>', 'conv widths (default the seed: 32,64,128)', (v) => v.split(',').map(Number) as [number, number, number])
  .addOption(new Option('--padding <how>', "conv padding: valid (the seed's unpadded 3x3 convs) or same (padding 1: keeps the image border in view)").choices(['valid', 'same']).default('valid'))
  .option('--resume', 'continue from <out>/checkpoint')
  .addOption(new Option('--on-bad-image <mode>', 'skip unreadable images with a warning, or fail').choices(['skip', 'fail']).default('fail'))
  .option('--augment-with <gan-dir>', "mix a GAN's generated images into training (classes matched by name)")
  .option('--synthetic-ratio <r>', 'generated images per real training image of the same class', num('--synthetic-ratio'), 1)
  .addOption(new Option('--synthetic-sampling <how>', 'pool: generated images join the training set; balanced: every batch half real, half generated').choices(['pool', 'balanced']).default('pool'))
  .option('--limit-per-class <n>', 'scarce-data experiments: train on the first n images per class of train+val, no validation', int('--limit-per-class'))
  .option('--operating-point <far=x|recall=x>', 'binary: choose the decision threshold on the validation split for a false-alarm rate or a defect recall (default far=0.05)', operatingPoint)
  .option('--test-time-flips', "predict with the mean of each image's and its three flips' probabilities (4 forwards per image); threshold and metrics use it")
  .option('--init-from <model-dir>', 'transfer learning: start from the weights of this classifier whose names and shapes match (the convolutions at the same --channels)')
  .option('--quiet', 'no progress bar')
  .action((opts) => train(opts));

program
  .command('calibrate')
  .description("binary models: choose the decision threshold on the model's recorded validation split and store it in model.json")
  .requiredOption('--model <dir>', 'model directory (its model.json records the split)')
  .requiredOption('--data <dir>', 'the dataset the model was trained on')
  .requiredOption('--operating-point <far=x|recall=x>', 'target false-alarm rate (share of good parts called defect) or defect recall', operatingPoint)
  .addOption(new Option('--test-time-flips <on|off>', "average each image's probability with its three flips (4 forwards per image); stored with the threshold").choices(['on', 'off']))
  .option('--json', 'print one JSON object')
  .action(async (opts) => {
    const testTimeFlips = opts.testTimeFlips === undefined ? undefined : opts.testTimeFlips === 'on';
    const r = await withEngine((engine) => calibrateModelDir(opts.model, opts.data, opts.operatingPoint, { engine, command: commandLine(), testTimeFlips }));
    if (opts.json) return console.log(JSON.stringify(r));
    const d = r.decision;
    console.log(`decision threshold ${d.threshold.toFixed(6)} for ${d.operatingPoint} (was ${r.previousThreshold === null ? 'none: 0.5' : r.previousThreshold.toFixed(6)}); defect when P(defect) >= threshold`);
    console.log(`  validation (chosen on): ${describeRates(d.validation)}, false alarms ${pct(d.validation.falseAlarmRate)}`);
    if (d.test) console.log(`  test (held out):        ${describeRates(d.test)}, false alarms ${pct(d.test.falseAlarmRate)}`);
    console.log(`written to ${resolve(opts.model, 'model.json')}`);
  });

program
  .command('eval')
  .description('evaluate a model directory on a dataset folder')
  .requiredOption('--model <dir>', 'model directory')
  .requiredOption('--data <dir>', 'dataset root: one sub-folder per class (binary models: good/free/ok/normal vs defect folders)')
  .option('--json', 'print one JSON object')
  .addOption(new Option('--on-bad-image <mode>', 'skip unreadable images (listed in the output), or fail').choices(['skip', 'fail']).default('fail'))
  .option('--skip-unknown-classes', 'ignore data folders that are not classes of the model (default: error)')
  .action(async (opts) => {
    const r = await withEngine((engine) => evaluateModel(opts.model, opts.data, { engine, onBadImage: opts.onBadImage, skipUnknownClasses: opts.skipUnknownClasses }));
    if (opts.json) console.log(JSON.stringify(r));
    else {
      console.log(formatReport(r));
      if (r.operatingPoints) console.log('\n' + formatOperatingPoints(r.operatingPoints));
      for (const s of r.skipped) console.log(`skipped: ${s.reason}`);
    }
  });

program
  .command('inspect')
  .description('classify images (files or folders of images)')
  .requiredOption('--model <dir>', 'model directory')
  .argument('<images...>', 'image files or folders')
  .option('--json', 'print one JSON object per line')
  .option('--heatmap <dir>', 'also write each image with its Grad-CAM heatmap overlaid to <dir>/<name>.heatmap.png')
  .addOption(new Option('--on-bad-image <mode>', 'report unreadable images and go on, or stop').choices(['skip', 'fail']).default('skip'))
  .action(async (images: string[], opts) => {
    const insp = await Inspector.load(opts.model);
    let failed = 0;
    const written = new Set<string>();
    try {
      for (const path of collectImages(images)) {
        try {
          let r;
          let heatmap: string | undefined;
          if (opts.heatmap) {
            const { heatmap: map, ...inspection } = await insp.inspect(path, { heatmap: true });
            r = inspection;
            heatmap = heatmapFile(opts.heatmap, path, written);
            await writeHeatmapPng(heatmap, await loadGray8(path), map);
          } else r = await insp.inspect(path);
          if (opts.json) console.log(JSON.stringify({ path, ...r, ...(heatmap ? { heatmap } : {}) }));
          else console.log(`${path}\t${r.label}\t${r.score.toFixed(4)}${heatmap ? `\t${heatmap}` : ''}`);
        } catch (e) {
          if (!(e instanceof WgslNnError) || opts.onBadImage === 'fail') throw e;
          failed++;
          if (opts.json) console.log(JSON.stringify({ path, error: (e as Error).message }));
          else console.error(`error: ${(e as Error).message}`);
        }
      }
    } finally {
      insp.dispose();
    }
    if (failed) process.exitCode = 2;
  });

program
  .command('demo')
  .description('generate a synthetic defect dataset, train a small model on it, evaluate, and write plots')
  .option('--out <dir>', 'where to write everything', 'runs/demo')
  .option('--size <px>', 'input size', int('--size'), 40)
  .option('--per-class <n>', 'synthetic images per class', int('--per-class'), 120)
  .option('--epochs <n>', 'epochs', int('--epochs'), 25)
  .option('--seed <n>', 'seed', int('--seed'), 1)
  .option('--quiet', 'no progress bar')
  .action(async (opts) => {
    const dataDir = join(opts.out, 'data');
    mkdirSync(opts.out, { recursive: true });
    console.error(`generating synthetic surfaces in ${resolve(dataDir)} ...`);
    const gen = await generateSynthetic({ outDir: dataDir, perClass: opts.perClass, size: 96, seed: opts.seed });
    console.error(`${gen.count} images, classes: ${gen.classes.join(', ')}`);
    await train({
      data: dataDir,
      task: 'multiclass',
      out: join(opts.out, 'model'),
      size: opts.size,
      epochs: opts.epochs,
      batchSize: 32,
      lr: 2e-3,
      lrSchedule: 'cosine',
      seed: opts.seed,
      augment: true,
      onBadImage: 'fail',
      fit: 'fill',
      channels: [16, 32, 64],
      quiet: opts.quiet,
    });
    console.log(`\nTry: node dist/cli.js inspect --model ${join(opts.out, 'model')} ${join(dataDir, gen.classes[1])}`);
  });

program
  .command('selfcheck')
  .description('print the adapter and run each kernel once against its CPU reference')
  .action(async () => {
    const ok = await runSelfCheck();
    if (!ok) process.exitCode = 1;
  });

registerGanCommands(program);
registerAnomalyCommands(program);
registerServeCommand(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  // Known problems get one clear line; anything else keeps its stack for a bug report.
  if (e instanceof WgslNnError) console.error(`error: ${e.message}`);
  else console.error(e);
  process.exitCode = 1;
});
