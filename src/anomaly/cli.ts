// `wgsl-nn anomaly ...`: train (on good images only), eval, score.
import { basename, extname, join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { collectImages, commandLine, diffAugmentList as policyList, int, integerList, num, withEngine } from '../cli-common.js';
import { ImageDecodeError, loadGray8 } from '../data/images.js';
import { WgslNnError } from '../gpu/errors.js';
import type { DiffAugmentPolicy } from '../nn/functional.js';
import { TrainingProgress } from '../train/progress.js';
import { recalibrateModelDir } from './calibrate.js';
import { DEFAULT_MEMORY_SIZE, DEFAULT_POOL_FACTOR, MEMORY_PRECISIONS, MEMORY_SAMPLINGS, type MemoryLayers, type MemoryOptions, type MemoryPrecision, type MemorySampling } from './feature-memory.js';
import { AnomalyDetector } from './detector.js';
import { evaluateAnomalyDetector, formatAnomalyReport } from './evaluate.js';
import { writeHeatmapPng } from './heatmap.js';
import { evaluateOnSyntheticDefects, type KindAuroc } from './proxy.js';
import { SYNTHETIC_DEFECT_KINDS } from './synthetic-defects.js';
import { trainAnomalyDetector, type AnomalyPhase } from './train.js';



/** The decode error with the flag that skips such images. */
function withSkipHint(e: unknown): unknown {
  return e instanceof ImageDecodeError ? new WgslNnError(`${e.message} (pass --on-bad-image skip to leave unreadable images out)`, { cause: e }) : e;
}

const fraction = (name: string) => (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`${name} must be a number in [0, 1)`);
  return n;
};

/** The synthetic defects calibration chooses the scoring on, the same on train and calibrate (proxy.ts). */
function addDefectFlags(command: Command): Command {
  return command
    .option('--defect-contrast <c>', 'choose the scoring on synthetic defects this much fainter (0.5: half as deep; default 1)', num('--defect-contrast'))
    .option('--defect-draws <n>', 'synthetic defects per validation image and kind to choose on (ROC-AUC averaged over draws; default 1)', int('--defect-draws'));
}

/** The feature memory's flags, the same on train and calibrate (each adds its own --backbone). */
function addMemoryFlags(command: Command): Command {
  return command
    .option('--memory-size <n>', 'feature vectors in each memory: one for every --backbone, or a comma list with one per backbone', integerList('--memory-size', 1), [DEFAULT_MEMORY_SIZE])
    .addOption(new Option('--memory-sampling <how>', "how the memory's vectors are chosen: random cells, or a greedy coreset (PatchCore) of a random pool").choices(MEMORY_SAMPLINGS).default('random'))
    .option('--memory-pool <n>', `candidate cells of the coreset (default ${DEFAULT_POOL_FACTOR} x --memory-size)`, int('--memory-pool'))
    .option(
      '--memory-layers <list>',
      "conv blocks whose features each memory holds: 2; 3 to append the third block's (larger field); deep for the third block's alone. One for every --backbone, or a comma list with one per backbone",
      memoryLayersList,
      ['2'],
    )
    .option(
      '--memory-downscale <list>',
      'reduce the working image by this integer factor before each memory\'s backbone (cells see that much more of the tile): one for every --backbone, or a comma list with one per backbone',
      integerList('--memory-downscale', 1, 8),
      [1],
    )
    .addOption(
      new Option(
        '--memory-precision <p>',
        "how each memory's vectors are stored: f32, or f16 (half the file; the vectors rounded to half precision before calibration). On calibrate without --backbone: convert the model's own memories to it",
      ).choices(MEMORY_PRECISIONS),
    )
    .option(
      '--memory-mixes <list>',
      'with several memories: the mixes the memory term alone is calibrated with, instead of the defaults (comma list of colon-separated weights, one per --backbone, e.g. 3:1:0,3:1:1)',
      memoryMixList,
    );
}

function memoryLayersList(v: string): string[] {
  const list = v.split(',').map((x) => x.trim());
  for (const x of list) if (!['2', '3', 'deep'].includes(x)) throw new InvalidArgumentError(`--memory-layers takes 2, 3 or deep (comma list), got '${x}'`);
  return list;
}

function memoryMixList(v: string): number[][] {
  return v.split(',').map((mix) => {
    const w = mix.split(':').map(Number);
    if (w.length < 2 || !w.every((x) => Number.isFinite(x) && x >= 0) || !w.some((x) => x > 0))
      throw new InvalidArgumentError(`--memory-mixes: each mix is two or more non-negative weights joined by ':', not all 0; got '${mix}'`);
    return w;
  });
}

/** The feature memories' options from the flags train and calibrate share: one memory per --backbone, the other flags apply to each. */
function memoryOptions(opts: {
  backbone?: string[];
  memorySize: number[];
  memorySampling: MemorySampling;
  memoryPool?: number;
  memoryLayers: string[];
  memoryDownscale: number[];
  memoryMixes?: number[][];
  memoryPrecision?: MemoryPrecision;
  keepMemories?: boolean;
}): MemoryOptions[] | undefined {
  if (!opts.backbone?.length) {
    if (opts.memoryMixes) throw new WgslNnError('--memory-mixes needs the memories it mixes (--backbone)');
    return undefined;
  }
  if (opts.memoryPool !== undefined && opts.memorySampling !== 'coreset') throw new WgslNnError('--memory-pool applies to --memory-sampling coreset only');
  const n = opts.backbone.length;
  for (const [flag, list] of [['--memory-size', opts.memorySize], ['--memory-layers', opts.memoryLayers], ['--memory-downscale', opts.memoryDownscale]] as const)
    if (list.length !== 1 && list.length !== n) throw new WgslNnError(`${flag} gives ${list.length} values for ${n} backbones: give one for all, or one per backbone`);
  const each = <T>(list: readonly T[], k: number): T => list[list.length === 1 ? 0 : k];
  // With --keep-memories the mixes also weigh the kept memories: calibration checks them against the whole set.
  const bad = opts.keepMemories ? undefined : opts.memoryMixes?.find((mix) => mix.length !== n);
  if (bad) throw new WgslNnError(`--memory-mixes: the mix ${bad.join(':')} has ${bad.length} weights for ${n} memories`);
  const layers = (k: number): MemoryLayers => {
    const v = each(opts.memoryLayers, k);
    return v === 'deep' ? 'deep' : v === '3' ? 3 : 2;
  };
  return opts.backbone.map((backbone, k) => ({
    backbone,
    size: each(opts.memorySize, k),
    sampling: opts.memorySampling,
    pool: opts.memoryPool,
    layers: layers(k),
    downscale: each(opts.memoryDownscale, k),
    precision: opts.memoryPrecision,
  }));
}

export function registerAnomalyCommands(program: Command): void {
  const anomaly = program.command('anomaly').description('anomaly detection trained on good images only (f-AnoGAN on patches): train, eval, score');

  const train = anomaly
    .command('train')
    .description('train on the folders named good/free/ok/normal of a dataset (all other folders are ignored)')
    .requiredOption('--data <dir>', 'dataset root; only its good/free/ok/normal folders are read')
    .requiredOption('--out <dir>', 'model directory to write (samples/, checkpoint/ inside)')
    .option('--gan-epochs <n>', 'epochs of the GAN stage', int('--gan-epochs'), 60)
    .option('--encoder-epochs <n>', 'epochs of the encoder stage', int('--encoder-epochs'), 30)
    .option('--patches-per-image <n>', 'random patches per training image per epoch', int('--patches-per-image'), 32)
    .option('--grid-share <f>', 'share of training patches on the scoring grid (edges included); the rest anywhere', num('--grid-share'), 0.5)
    .option('--batch-size <n>', 'patches per batch', int('--batch-size'), 64)
    .option('--patch-size <px>', 'patch side at the working resolution (16, 32, 64)', int('--patch-size'), 32)
    .option('--scale <f>', 'working resolution = image size x scale', num('--scale'), 0.5)
    .option('--stride <px>', 'step of the scoring grid', int('--stride'), 16)
    .option('--latent-dim <n>', 'latent dimension', int('--latent-dim'), 64)
    .option('--ngf <n>', 'generator base width', int('--ngf'), 32)
    .option('--ndf <n>', 'discriminator base width', int('--ndf'), 32)
    .option('--nef <n>', 'encoder base width', int('--nef'), 32)
    .option('--lr-g <lr>', 'generator learning rate', num('--lr-g'), 2e-4)
    .option('--lr-d <lr>', 'discriminator learning rate', num('--lr-d'), 2e-4)
    .option('--lr-e <lr>', 'encoder learning rate', num('--lr-e'), 2e-4)
    .option('--kappa <k>', 'weight of the discriminator-feature term in the encoder loss', num('--kappa'), 1)
    .option('--diff-augment <ops>', 'DiffAugment ops on everything D sees: color,translation,cutout or none', policyList, ['translation', 'cutout'] as DiffAugmentPolicy[])
    .option('--sigma <px>', 'Gaussian smoothing of the anomaly map in working pixels (default: chosen by calibration)', num('--sigma'))
    .option('--top-k <n>', 'image score = mean of the n largest map values (default: chosen by calibration)', int('--top-k'))
    .option('--feature-weight <w>', 'weight of the discriminator-feature residual in the map (default: chosen by calibration)', num('--feature-weight'))
    .option('--mirror', 'average each image with its mirror image when scoring (default: chosen by calibration)')
    .option('--backbone <dir...>', "add a feature memory on this classifier's first convolutions (e.g. models/neu); several: one memory each; calibration weighs their term");
  addDefectFlags(addMemoryFlags(train))
    .option('--false-alarm-rate <f>', 'share of validation good images allowed above the threshold', fraction('--false-alarm-rate'), 0.05)
    .option('--seed <n>', 'seed of split, initialisation, patches and noise', int('--seed'), 1)
    .option('--test-fraction <f>', 'share of the good images held out for testing', fraction('--test-fraction'), 0.2)
    .option('--val-fraction <f>', 'share of the rest used for validation (threshold)', fraction('--val-fraction'), 0.2)
    .option('--sample-every <n>', 'write sample / reconstruction grids every n epochs', int('--sample-every'), 1)
    .option('--resume', 'continue from <out>/checkpoint')
    .addOption(new Option('--on-bad-image <mode>', 'skip unreadable good images with a warning, or fail').choices(['skip', 'fail']).default('fail'))
    .option('--quiet', 'no progress bar')
    .action(async (opts) => {
      if (opts.memoryPrecision && !opts.backbone?.length) throw new WgslNnError('--memory-precision needs the memories it stores (--backbone)');
      await withEngine(async (engine) => {
        console.error(`adapter: ${engine.describe()}`);
        const bars: Record<AnomalyPhase, TrainingProgress> = {
          gan: new TrainingProgress({
            epochs: opts.ganEpochs,
            fields: [
              { key: 'lossD', label: 'D', digits: 3 },
              { key: 'lossG', label: 'G', digits: 3 },
            ],
            unit: 'patch',
            enabled: process.stderr.isTTY && !opts.quiet,
          }),
          encoder: new TrainingProgress({
            epochs: opts.encoderEpochs,
            fields: [{ key: 'loss', label: 'loss', digits: 4 }],
            unit: 'patch',
            enabled: process.stderr.isTTY && !opts.quiet,
          }),
        };
        const result = await trainAnomalyDetector({
          data: opts.data,
          out: opts.out,
          config: {
            patchSize: opts.patchSize,
            scale: opts.scale,
            stride: opts.stride,
            latentDim: opts.latentDim,
            ngf: opts.ngf,
            ndf: opts.ndf,
            nef: opts.nef,
          },
          ganEpochs: opts.ganEpochs,
          encoderEpochs: opts.encoderEpochs,
          patchesPerImage: opts.patchesPerImage,
          gridShare: opts.gridShare,
          batchSize: opts.batchSize,
          lrG: opts.lrG,
          lrD: opts.lrD,
          lrE: opts.lrE,
          kappa: opts.kappa,
          diffAugment: opts.diffAugment,
          sigma: opts.sigma,
          topK: opts.topK,
          featureWeight: opts.featureWeight,
          mirror: opts.mirror,
          memories: memoryOptions(opts),
          memoryMixes: opts.memoryMixes,
          defects: { contrast: opts.defectContrast, draws: opts.defectDraws },
          falseAlarmRate: opts.falseAlarmRate,
          seed: opts.seed,
          testFraction: opts.testFraction,
          valFraction: opts.valFraction,
          sampleEvery: opts.sampleEvery,
          resume: opts.resume,
          onBadImage: opts.onBadImage,
          engine,
          command: commandLine(),
          log: (line) => console.error(line),
          onEpochStart: (phase, epoch, batches) => bars[phase].start(epoch, batches),
          onBatch: (phase, p) => bars[phase].update(p.batch, p.losses, p.samplesPerSecond),
          onEpochEnd: (r) => {
            bars[r.phase].stop();
            const detail =
              r.phase === 'gan'
                ? `D ${r.lossD!.toFixed(4)} G ${r.lossG!.toFixed(4)} | D(real) ${r.dReal!.toFixed(3)} D(fake) ${r.dFake!.toFixed(3)}`
                : `loss ${r.loss!.toFixed(5)} (pixel ${r.pixelLoss!.toFixed(5)}, feature ${r.featureLoss!.toFixed(5)}) | val ${r.valLoss!.toFixed(5)}`;
            const total = r.phase === 'gan' ? opts.ganEpochs : opts.encoderEpochs;
            console.error(`${r.phase} epoch ${r.epoch}/${total}: ${detail} | ${r.imagesPerSecond.toFixed(1)} patches/s, ${r.seconds.toFixed(1)} s`);
          },
        });
        console.log(
          `\ntrained on ${result.counts.train} good images (validation ${result.counts.val}, test ${result.counts.test} kept out); ` +
            `${result.patchesPerSecond.toFixed(1)} patches/s, ${result.trainSeconds.toFixed(0)} s of training, ${result.seconds.toFixed(0)} s in this run`,
        );
        console.log(`threshold: ${result.threshold.toFixed(4)} (${((opts.falseAlarmRate as number) * 100).toFixed(1)} % false alarms on the validation good images)`);
        console.log(`model:   ${resolve(result.modelDir)} (generator, discriminator, encoder .safetensors + model.json)`);
        console.log(`samples: ${resolve(result.modelDir, 'samples')}`);
      });
    });

  const calibrate = anomaly
    .command('calibrate')
    .description("redo a trained model's calibration on its validation good images (scoring settings, threshold); weights unchanged")
    .requiredOption('--model <dir>', 'anomaly model directory (model.json is rewritten)')
    .option('--data <dir>', 'dataset root holding the validation images (default: the one recorded in the model)')
    .option('--false-alarm-rate <f>', "share of validation good images allowed above the threshold (default: the model's)", fraction('--false-alarm-rate'))
    .option('--sigma <px>', 'fix the map smoothing (with --top-k and --feature-weight; default: choose on synthetic defects)', num('--sigma'))
    .option('--top-k <n>', 'fix the score top-k', int('--top-k'))
    .option('--feature-weight <w>', 'fix the feature weight', num('--feature-weight'))
    .option('--mirror', 'fix: average with the mirror image')
    .option('--keep-memories', "with --backbone: keep the model's memories and append the new ones (drawn as at their position after the kept ones)")
    .option('--keep-scoring', "keep the model's scoring settings; derive only the normal levels and the threshold again (e.g. with --false-alarm-rate or --memory-precision)")
    .option('--backbone <dir...>', "first build a feature memory on this classifier's first convolutions (e.g. models/neu) from the model's training images; several: one memory each");
  addDefectFlags(addMemoryFlags(calibrate))
    .action(async (opts) => {
      const fixed = opts.sigma !== undefined || opts.topK !== undefined || opts.featureWeight !== undefined || opts.mirror !== undefined;
      if (opts.keepScoring && (fixed || opts.memoryMixes)) throw new WgslNnError('--keep-scoring keeps the model\'s settings: not with --sigma, --top-k, --feature-weight, --mirror or --memory-mixes');
      if ((opts.keepScoring || fixed) && (opts.defectContrast !== undefined || opts.defectDraws !== undefined))
        throw new WgslNnError('--defect-contrast and --defect-draws choose among scoring candidates: not with --keep-scoring, --sigma, --top-k, --feature-weight or --mirror (to score a model on them: anomaly proxy)');
      const cal = await withEngine((engine) =>
        recalibrateModelDir(opts.model, {
          engine,
          data: opts.data,
          falseAlarmRate: opts.falseAlarmRate,
          candidates: fixed ? [{ sigma: opts.sigma ?? 2, topK: opts.topK ?? 16, featureWeight: opts.featureWeight ?? 1, mirror: !!opts.mirror }] : undefined,
          memories: memoryOptions(opts),
          memoryMixes: opts.memoryMixes,
          memoryPrecision: opts.memoryPrecision,
          keepScoring: !!opts.keepScoring,
          keepMemories: !!opts.keepMemories,
          defects: { contrast: opts.defectContrast, draws: opts.defectDraws },
          log: (line) => console.error(line),
          command: commandLine(),
        }),
      );
      if (cal.selection) {
        console.log(`${'mirror'.padStart(6)} ${'sigma'.padStart(6)} ${'top-k'.padStart(6)} ${'p.w.'.padStart(5)} ${'f.w.'.padStart(5)} ${'m.w.'.padStart(5)} ${'mix'.padStart(5)} ${'spot'.padStart(6)} ${'line'.padStart(6)} ${'region'.padStart(6)} ${'mean'.padStart(6)}`);
        for (const c of cal.selection)
          console.log(
            `${(c.mirror ? 'yes' : 'no').padStart(6)} ${String(c.sigma).padStart(6)} ${String(c.topK).padStart(6)} ${String(c.pixelWeight ?? 1).padStart(5)} ${String(c.featureWeight).padStart(5)} ${String(c.memoryWeight ?? 0).padStart(5)} ${(c.memoryMix?.join(':') ?? '-').padStart(5)} ` +
              `${c.auroc.spot.toFixed(3).padStart(6)} ${c.auroc.line.toFixed(3).padStart(6)} ${c.auroc.region.toFixed(3).padStart(6)} ${c.auroc.mean.toFixed(3).padStart(6)}`,
          );
      }
      const s = cal.scoring;
      console.log(`scoring: sigma ${s.sigma}, top-k ${s.topK}, pixel weight ${s.pixelWeight ?? 1}, feature weight ${s.featureWeight ?? 1}, memory weight ${s.memoryWeight ?? 0}${s.memoryMix ? ` (mix ${s.memoryMix.join(':')})` : ''}, mirror ${s.mirror ? 'yes' : 'no'}; threshold ${cal.threshold.toFixed(4)} at ${(cal.falseAlarmRate * 100).toFixed(1)} % false alarms`);
    });

  anomaly
    .command('proxy')
    .description("score a model as it is on synthetic defects drawn on its validation good images (ROC-AUC per kind and draw); nothing is written")
    .requiredOption('--model <dir>', 'anomaly model directory')
    .option('--data <dir>', 'dataset root holding the validation images (default: the one recorded in the model)')
    .option('--defect-contrast <c>', "scale of each defect's depth or shift (1: calibration's defects; 0.5: half as deep, same place and shape)", num('--defect-contrast'), 1)
    .option('--defect-draws <n>', 'independent defects per image and kind', int('--defect-draws'), 1)
    .option('--seed <n>', "seed of the draws (default: the model's split seed, as calibration)", int('--seed'))
    .option('--json', 'print one JSON object')
    .action(async (opts) => {
      const r = await withEngine((engine) => evaluateOnSyntheticDefects(opts.model, { engine, data: opts.data, contrast: opts.defectContrast, draws: opts.defectDraws, seed: opts.seed }));
      if (opts.json) return console.log(JSON.stringify(r));
      const row = (label: string, a: KindAuroc) => `${label.padEnd(6)} ${SYNTHETIC_DEFECT_KINDS.map((k) => a[k].toFixed(4).padStart(7)).join(' ')} ${a.mean.toFixed(4).padStart(7)}`;
      console.log(`${r.images} validation good images, contrast ${r.contrast}, ${r.draws} draw(s), seed ${r.seed}: ROC-AUC clean vs defected`);
      console.log(`${'draw'.padEnd(6)} ${SYNTHETIC_DEFECT_KINDS.map((k) => k.padStart(7)).join(' ')} ${'mean'.padStart(7)}`);
      r.perDraw.forEach((a, d) => console.log(row(String(d + 1), a)));
      if (r.draws > 1) console.log(row('all', r.auroc));
    });

  anomaly
    .command('eval')
    .description('score every image of a dataset folder: good = good/free/ok/normal folders, every other folder a defect class')
    .requiredOption('--model <dir>', 'anomaly model directory')
    .requiredOption('--data <dir>', 'dataset root: one sub-folder per class')
    .option('--masks <dir>', 'ground-truth masks, same <folder>/<stem> layout as the data: adds the pixel-level ROC-AUC')
    .option('--heatmap <dir>', 'write each image with its anomaly map overlaid as <dir>/<folder>/<stem>.png')
    .addOption(new Option('--split <which>', "all images, or 'test': leave out the good images the model was trained or calibrated on").choices(['all', 'test']).default('all'))
    .option('--threshold <t>', "decision threshold instead of the model's", num('--threshold'))
    .option('--json', 'print one JSON object')
    .addOption(new Option('--on-bad-image <mode>', 'skip unreadable images (listed in the output), or fail').choices(['skip', 'fail']).default('fail'))
    .action(async (opts) => {
      const r = await withEngine((engine) =>
        evaluateAnomalyDetector(opts.model, opts.data, {
          engine,
          masks: opts.masks,
          heatmapDir: opts.heatmap,
          split: opts.split,
          threshold: opts.threshold,
          onBadImage: opts.onBadImage,
          onProgress: (done, total) => {
            if (process.stderr.isTTY) process.stderr.write(`\rscored ${done}/${total}${done === total ? '\n' : ''}`);
          },
        }).catch((e: unknown) => {
          throw withSkipHint(e);
        }),
      );
      if (opts.json) console.log(JSON.stringify(r));
      else {
        console.log(formatAnomalyReport(r));
        for (const s of r.skipped) console.log(`skipped: ${s.reason}`);
        if (opts.heatmap) console.log(`heatmaps: ${resolve(opts.heatmap)}`);
      }
    });

  anomaly
    .command('score')
    .description('score images (files or folders): an anomaly score and a good/defect decision per image')
    .requiredOption('--model <dir>', 'anomaly model directory')
    .argument('<images...>', 'image files or folders')
    .option('--threshold <t>', "decision threshold instead of the model's", num('--threshold'))
    .option('--heatmap <dir>', 'write each image with its anomaly map overlaid as <dir>/<stem>.png')
    .option('--json', 'print one JSON object per line')
    .addOption(new Option('--on-bad-image <mode>', 'report unreadable images and go on, or stop').choices(['skip', 'fail']).default('skip'))
    .action(async (images: string[], opts) => {
      const det = await AnomalyDetector.load(opts.model, { threshold: opts.threshold });
      let failed = 0;
      try {
        if (!opts.json) console.error(`threshold ${det.threshold.toFixed(4)} (${(det.meta.threshold.falseAlarmRate * 100).toFixed(1)} % false alarms on the validation good images)`);
        for (const path of collectImages(images)) {
          try {
            const r = await det.score(path, { map: !!opts.heatmap });
            if (opts.heatmap && r.map) await writeHeatmapPng(join(opts.heatmap, `${basename(path, extname(path))}.png`), await loadGray8(path), r.map, det.threshold);
            const decision = r.isDefect ? 'defect' : 'good';
            if (opts.json) console.log(JSON.stringify({ path, score: r.score, isDefect: r.isDefect, decision, threshold: det.threshold }));
            else console.log(`${path}\t${r.score.toFixed(4)}\t${decision}`);
          } catch (e) {
            if (!(e instanceof ImageDecodeError) || opts.onBadImage === 'fail') throw withSkipHint(e);
            failed++;
            if (opts.json) console.log(JSON.stringify({ path, error: e.message }));
            else console.error(`error: ${e.message}`);
          }
        }
      } finally {
        det.dispose();
      }
      if (failed) process.exitCode = 2;
    });
}
