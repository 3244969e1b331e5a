// `wgsl-nn gan ...`: train, sample, score.
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { commandLine, diffAugmentList as policyList, int, nonNegativeInt, num, withEngine } from '../cli-common.js';
import { TrainingProgress } from '../train/progress.js';
import { loadClassifierFilter } from './classifier-filter.js';
import { loadGanSampler, writeGanClassSet, writeGanMixture } from './mixture.js';
import { recomputeGeneratorStatistics, writeSampleFolders, writeSampleSheet } from './samples.js';
import { formatGanScore, scoreGan } from './score.js';
import { trainGan } from './train.js';


export function registerGanCommands(program: Command): void {
  const gan = program.command('gan').description('generative adversarial networks for defect images: train, sample, score');

  gan
    .command('train')
    .description('train a GAN on a class-per-folder dataset (all classes, class-conditional; or one class with --class)')
    .requiredOption('--data <dir>', 'dataset root: one sub-folder per class')
    .requiredOption('--out <dir>', 'GAN model directory to write (samples/, snapshots/, checkpoint/ inside)')
    .addOption(new Option('--arch <arch>', "dense: the seed's MLP GAN (28x28 patches); dcgan: convolutional, 64x64").choices(['dense', 'dcgan']).default('dcgan'))
    .option('--class <name>', 'train on this class only (an unconditional model)')
    .option('--unconditional', "every class's images as one unlabelled set (the seed's GAN)")
    .option('--size <px>', 'image size (default: 28 dense, 64 dcgan)', int('--size'))
    .option('--epochs <n>', 'epochs', int('--epochs'), 100)
    .option('--batch-size <n>', 'batch size (default: 128 dense, as the seed; 64 dcgan)', int('--batch-size'))
    .option('--lr-g <lr>', 'generator Adam learning rate', num('--lr-g'), 2e-4)
    .option('--lr-d <lr>', 'discriminator Adam learning rate', num('--lr-d'), 2e-4)
    .option('--beta1 <b>', "Adam's beta1", num('--beta1'), 0.5)
    .option('--label-smoothing <s>', 'one-sided: real targets 1 - s (BCE loss only)', num('--label-smoothing'), 0)
    .addOption(new Option('--loss <loss>', "adversarial loss: bce (non-saturating, the seed's) or hinge (SN-GAN's)").choices(['bce', 'hinge']).default('bce'))
    .option('--d-steps <k>', 'discriminator updates per generator update (n_dis of SN-GAN; each on the same real batch with fresh noise and augmentation)', int('--d-steps'), 1)
    .option('--ema <decay>', "sample and save an exponential moving average of the generator's weights (e.g. 0.999)", num('--ema'))
    .option('--diff-augment <ops>', 'DiffAugment ops on everything D sees: color,translation,cutout or none (default: none dense, all three dcgan)', policyList)
    .option('--latent-dim <n>', 'noise dimension', int('--latent-dim'), 100)
    .option('--ngf <n>', 'DCGAN generator base width', int('--ngf'), 32)
    .option('--ndf <n>', 'DCGAN discriminator base width', int('--ndf'), 32)
    .option('--d-batchnorm', 'BatchNorm2d in the DCGAN discriminator (the default, except with --spectral-norm)')
    .option('--no-d-batchnorm', 'no BatchNorm2d in the DCGAN discriminator')
    .option('--spectral-norm', "spectral normalisation of the discriminator's weights (torch's spectral_norm; implies --no-d-batchnorm unless --d-batchnorm is given)")
    .option('--conditional-bn', "class-conditional BatchNorm in a conditional DCGAN's generator: each class its own BatchNorm scale and shift")
    .addOption(new Option('--upsampling <how>', "how the DCGAN generator doubles the resolution: transposed (DCGAN's ConvTranspose2d 4/2/1) or nearest (Upsample + Conv2d 3/1/1, a resize-convolution without checkerboard patterns)").choices(['transposed', 'nearest']).default('transposed'))
    .option('--aux-classifier', "an auxiliary classifier head on a conditional model's discriminator (AC-GAN): D learns the real images' classes, G is rewarded when its samples are classified as their drawn class")
    .option('--class-weight <w>', "with --aux-classifier: weight of the class cross-entropy in both losses (default 1)", num('--class-weight'))
    .option('--save-every <n>', 'write a loadable snapshot every n epochs (0: never)', nonNegativeInt('--save-every'), 0)
    .option('--sample-every <n>', 'write a sample grid PNG every n epochs', int('--sample-every'), 1)
    .option('--limit-per-class <n>', 'use only n training images per class (scarce-data experiments)', int('--limit-per-class'))
    .option('--seed <n>', 'seed of split, init, noise and augmentation', int('--seed'), 1)
    .option('--split-seed <n>', 'seed of the split alone (default --seed), as `wgsl-nn train --split-seed`', int('--split-seed'))
    .option('--test-fraction <f>', 'fraction of each class held out (never shown to the GAN)', num('--test-fraction'), 0.2)
    .option('--val-fraction <f>', 'validation fraction of the rest, as `wgsl-nn train`', num('--val-fraction'), 0.2)
    .option('--resume', 'continue from <out>/checkpoint')
    .addOption(new Option('--on-bad-image <mode>', 'skip unreadable images with a warning, or fail').choices(['skip', 'fail']).default('fail'))
    .option('--quiet', 'no progress bar')
    .action(async (opts) => {
      await withEngine(async (engine) => {
        console.error(`adapter: ${engine.describe()}`);
        const bar = new TrainingProgress({
          epochs: opts.epochs,
          fields: [
            { key: 'lossD', label: 'D', digits: 3 },
            { key: 'lossG', label: 'G', digits: 3 },
          ],
          enabled: process.stderr.isTTY && !opts.quiet,
        });
        const result = await trainGan({
          data: opts.data,
          out: opts.out,
          arch: opts.arch,
          className: opts.class,
          unconditional: opts.unconditional,
          imageSize: opts.size,
          epochs: opts.epochs,
          batchSize: opts.batchSize,
          lrG: opts.lrG,
          lrD: opts.lrD,
          beta1: opts.beta1,
          labelSmoothing: opts.labelSmoothing,
          loss: opts.loss,
          discriminatorSteps: opts.dSteps,
          emaDecay: opts.ema,
          diffAugment: opts.diffAugment,
          latentDim: opts.latentDim,
          ngf: opts.ngf,
          ndf: opts.ndf,
          discriminatorBatchNorm: opts.dBatchnorm,
          spectralNorm: opts.spectralNorm,
          conditionalBatchNorm: opts.conditionalBn,
          auxiliaryClassifier: opts.auxClassifier,
          upsampling: opts.upsampling,
          classWeight: opts.classWeight,
          saveEvery: opts.saveEvery,
          sampleEvery: opts.sampleEvery,
          limitPerClass: opts.limitPerClass,
          seed: opts.seed,
          splitSeed: opts.splitSeed,
          testFraction: opts.testFraction,
          valFraction: opts.valFraction,
          resume: opts.resume,
          onBadImage: opts.onBadImage,
          engine,
          command: commandLine(),
          log: (line) => console.error(line),
          onEpochStart: (epoch, batches) => bar.start(epoch, batches),
          onBatch: (p) => bar.update(p.batch, p.losses, p.samplesPerSecond),
          onEpochEnd: (r) => {
            bar.stop();
            console.error(
              `epoch ${r.epoch}/${opts.epochs}: D ${r.lossD.toFixed(4)} G ${r.lossG.toFixed(4)} | D(real) ${r.dReal.toFixed(3)} D(fake) ${r.dFake.toFixed(3)} | ` +
                `diversity ${r.diversity.toFixed(3)} | ${r.imagesPerSecond.toFixed(1)} img/s, ${r.seconds.toFixed(1)} s`,
            );
          },
        });
        console.log(`\n${result.history.length} epochs; ${result.iterationsPerSecond.toFixed(2)} iterations/s, ${result.imagesPerSecond.toFixed(1)} images/s; ${result.seconds.toFixed(0)} s in all`);
        console.log(`model:   ${resolve(result.modelDir)} (generator.safetensors, discriminator.safetensors, model.json)`);
        console.log(`samples: ${resolve(result.modelDir, 'samples')}`);
      });
    });

  gan
    .command('sample')
    .description('write generated PNGs: N per class, one sub-folder per class (a dataset `wgsl-nn train` reads)')
    .requiredOption('--model <dir>', 'GAN model directory (one generator; a mixture: an equal share from each; a class set: each class from its generator)')
    .requiredOption('--count <n>', 'images per class', int('--count'))
    .requiredOption('--out <dir>', 'output folder')
    .option('--seed <n>', 'noise seed', int('--seed'), 1)
    .option('--truncation <t>', 'truncation trick: noise components redrawn until |z| <= t (fewer odd samples, less variety)', num('--truncation'))
    .option('--filter-with <classifier>', 'keep only samples this classifier assigns to their class (rejection sampling; the classifier must know every class)')
    .option('--min-confidence <p>', "with --filter-with: the classifier's probability a kept sample needs", num('--min-confidence'), 0.5)
    .option('--max-draw-factor <f>', 'with --filter-with: give up on a class after drawing f x --count images', num('--max-draw-factor'), 20)
    .option('--standing-stats <batches>', "first recompute the generator's BatchNorm statistics from this many batches of noise (BigGAN's standing statistics; for a --ema generator)", int('--standing-stats'))
    .option('--sheet <png>', 'also write a contact sheet of the written images: the first 10 of every class, one row per class')
    .action(async (opts) => {
      await withEngine(async (engine) => {
        const { generator, meta } = loadGanSampler(opts.model, engine);
        let classifier: ReturnType<typeof loadClassifierFilter> | undefined;
        try {
          if (opts.standingStats !== undefined) recomputeGeneratorStatistics(generator, opts.standingStats, opts.seed);
          classifier = opts.filterWith ? loadClassifierFilter(opts.filterWith, generator, opts.minConfidence, engine) : undefined;
          const filter = classifier?.filter;
          const files = await writeSampleFolders(generator, opts.out, opts.count, opts.seed, {
            truncation: opts.truncation,
            filter,
            maxDrawFactor: opts.maxDrawFactor,
            onClass: filter ? (c, accepted, drawn) => console.error(`${c}: the filter accepted ${accepted} of ${drawn} drawn (${((100 * accepted) / drawn).toFixed(0)} %)`) : undefined,
          });
          console.log(`${files.length} images (${opts.count} per class: ${meta.classes.join(', ')}) in ${resolve(opts.out)}`);
          if (opts.sheet) {
            await writeSampleSheet(opts.sheet, files, meta.classes.length, opts.count, meta.imageSize);
            console.log(`contact sheet: ${resolve(opts.sheet)}`);
          }
        } finally {
          generator.dispose();
          classifier?.dispose();
        }
      });
    });

  gan
    .command('mix')
    .description('one GAN directory of several generators (copied whole): sample, score and --augment-with draw an equal share of each class from each')
    .requiredOption('--members <dirs>', 'GAN model directories, comma-separated (same classes, image size and training split)')
    .requiredOption('--out <dir>', 'mixture directory to write (a new directory, not one of the members)')
    .action((opts) => {
      const members = String(opts.members).split(',').filter(Boolean);
      const meta = writeGanMixture(opts.out, members, { command: commandLine() });
      console.log(`${resolve(opts.out)}: ${meta.members.length} generators (${members.join(', ')}), classes ${meta.classes.join(', ')}, ${meta.imageSize}x${meta.imageSize}`);
    });

  gan
    .command('join')
    .description('one multi-class GAN directory of one-class generators (each trained with --class; copied whole): class k is drawn from member k')
    .requiredOption('--members <dirs>', 'one-class GAN model directories, comma-separated, in class order (same image size and training split)')
    .requiredOption('--out <dir>', 'class-set directory to write (a new directory, not one of the members)')
    .action((opts) => {
      const members = String(opts.members).split(',').filter(Boolean);
      const meta = writeGanClassSet(opts.out, members, { command: commandLine() });
      console.log(`${resolve(opts.out)}: ${meta.members.length} one-class generators, classes ${meta.classes.join(', ')}, ${meta.imageSize}x${meta.imageSize}`);
    });

  gan
    .command('score')
    .description("Fréchet distance and KID between generated and real images per class, on a classifier's features, beside the real-vs-real floor")
    .requiredOption('--model <dir>', 'GAN model directory')
    .requiredOption('--data <dir>', 'real images: one sub-folder per class, named as the GAN\'s classes')
    .option('--classifier <dir>', 'classifier model directory whose penultimate features are compared', 'models/neu')
    .option('--test-split', "score against the GAN's held-out test split of --data only (recomputed from its model.json)")
    .option('--seed <n>', 'seed of the halves, the noise and the KID subsets', int('--seed'), 1)
    .option('--json', 'print one JSON object')
    .action(async (opts) => {
      await withEngine(async (engine) => {
        const report = await scoreGan({ model: opts.model, data: opts.data, classifier: opts.classifier, testSplit: opts.testSplit, seed: opts.seed, engine });
        console.log(opts.json ? JSON.stringify(report) : formatGanScore(report));
      });
    });
}
