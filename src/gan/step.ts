// One adversarial iteration: a discriminator step, then a generator step (Goodfellow et al. 2014,
// with the non-saturating generator loss -log D(G(z))). With `discriminatorSteps` k > 1, k D steps on the
// iteration's real batch (each with fresh noise and a fresh augmentation draw) before the G step: the
// n_dis of WGAN and SN-GAN (Miyato et al. 2018 use 5), for a discriminator that would otherwise stay at
// chance and give the generator little to learn from. The real batch is reused rather than k drawn, so an
// epoch still is one pass over the data with one G step per batch.
//
//   D step: loss_D = BCE(D(aug(x_real)), 1 - smoothing) + BCE(D(aug(G(z).detach())), 0); update D only.
//           A discriminator without batch statistics scores real and fake in one pass (Discriminator.batchesJoin).
//   G step: loss_G = BCE(D(aug(G(z'))), 1); the discriminator's parameters are frozen for this
//           backward (no weight-gradient GEMMs are run for them); update G only.
//
// With an auxiliary classifier on D (AC-GAN, Odena et al. 2017), both losses gain a class term:
//   D step: + w CE(D_cls(aug(x_real)), y)   (real images only: D's head is a classifier of real images;
//           AC-GAN's original also classifies fakes, which lets G and D agree on easy, less varied samples)
//   G step: + w CE(D_cls(aug(G(z', y))), y)  (G is rewarded when real-trained features see the drawn class)
//
// `aug` is differentiable augmentation (DiffAugment, Zhao et al. 2020) applied to everything the
// discriminator sees, real and fake alike, so D cannot memorise a few hundred real images and the
// generator still gets gradients through the augmentation. Losses use BCE-with-logits: for the dense
// seed GAN this equals the seed's sigmoid + BCE in value and gradient, without its log(0) hazard.
//
// `loss: 'hinge'` replaces the two BCE losses with the hinge loss of SN-GAN and the projection
// discriminator (Miyato et al. 2018; Miyato & Koyama 2018; Lim & Ye 2017):
//   D step: loss_D = mean(relu(1 - D(aug(x_real)))) + mean(relu(1 + D(aug(G(z).detach()))))
//   G step: loss_G = -mean(D(aug(G(z'))))
// D stops being pushed once a real logit is above 1 and a fake one below -1, so it cannot grow its
// margins without bound; G's gradient does not vanish when D is confident (the raw logit, not a sigmoid).
// Local derivatives: d/dl relu(1 - l) = -[l < 1], d/dl relu(1 + l) = [l > -1], d/dl (-l) = -1.
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import * as F from '../nn/functional.js';
import { Adam } from '../nn/optim.js';
import { noGrad, type Tensor } from '../nn/tensor.js';
import { Rng } from '../util/rng.js';
import { mixSeed } from '../data/split.js';
import { type Discriminator, type Generator, isConditional, latentBatch, oneHot, pixelRange } from './models.js';

/** A differentiable augmentation of discriminator inputs; the same `seed` gives the same draw. */
export type DiscriminatorAugment = (x: Tensor, seed: number) => Tensor;

export interface GanStepOptions {
  /** Generator and discriminator learning rates (the seed: 2e-4 both). */
  lrG?: number;
  lrD?: number;
  /** Adam's beta1 (the seed and DCGAN: 0.5) and beta2. */
  beta1?: number;
  beta2?: number;
  /** One-sided label smoothing: real targets 1 - s (Salimans et al. 2016). Default 0. */
  labelSmoothing?: number;
  augment?: DiscriminatorAugment | null;
  /** Weight w of the auxiliary classifier's cross-entropy in both losses (a discriminator with one only; default 1). */
  classWeight?: number;
  /** The adversarial loss: BCE with the non-saturating G loss (default), or the hinge loss. */
  loss?: GanLoss;
  /** Discriminator updates per generator update (default 1). */
  discriminatorSteps?: number;
  /** Seed of the noise and augmentation draws; iteration i draws from Rng(mixSeed(seed, i)), so a resumed run draws as an uninterrupted one. */
  seed?: number;
}

export type GanLoss = 'bce' | 'hinge';
export const GAN_LOSSES: readonly GanLoss[] = ['bce', 'hinge'];

export interface GanStepLosses {
  lossD: Tensor;
  lossG: Tensor;
  /** Mean D(real) and D(fake) probabilities (the sigmoid of the logits, also with the hinge loss) before the D update (diagnostics). */
  dReal: Tensor;
  dFake: Tensor;
}

export class GanStep {
  readonly optG: Adam;
  readonly optD: Adam;
  private readonly seed: number;
  private readonly smoothing: number;
  private readonly augment: DiscriminatorAugment | null;
  private readonly classWeight: number;
  private readonly hinge: boolean;
  private readonly discriminatorSteps: number;
  private readonly engine: Engine;

  constructor(
    readonly generator: Generator,
    readonly discriminator: Discriminator,
    options: GanStepOptions = {},
  ) {
    const betas: [number, number] = [options.beta1 ?? 0.5, options.beta2 ?? 0.999];
    this.optG = new Adam(generator.parameters(), { lr: options.lrG ?? 2e-4, betas });
    this.optD = new Adam(discriminator.parameters(), { lr: options.lrD ?? 2e-4, betas });
    this.seed = options.seed ?? 1;
    this.smoothing = options.labelSmoothing ?? 0;
    if (!(this.smoothing >= 0 && this.smoothing < 0.5)) throw new WgslNnError(`label smoothing must be in [0, 0.5), got ${this.smoothing}`);
    const loss = options.loss ?? 'bce';
    if (!GAN_LOSSES.includes(loss)) throw new WgslNnError(`GAN loss must be one of ${GAN_LOSSES.join(', ')}, got '${loss}'`);
    this.hinge = loss === 'hinge';
    if (this.hinge && this.smoothing > 0) throw new WgslNnError('label smoothing applies to the BCE loss only, not to the hinge loss');
    this.discriminatorSteps = options.discriminatorSteps ?? 1;
    if (!(Number.isInteger(this.discriminatorSteps) && this.discriminatorSteps >= 1))
      throw new WgslNnError(`discriminator steps per generator step must be a positive integer, got ${options.discriminatorSteps}`);
    this.augment = options.augment ?? null;
    this.classWeight = options.classWeight ?? 1;
    if (!(this.classWeight >= 0 && Number.isFinite(this.classWeight))) throw new WgslNnError(`class loss weight must be finite and >= 0, got ${this.classWeight}`);
    if (options.classWeight !== undefined && !discriminator.classifier)
      throw new WgslNnError('a class loss weight needs a discriminator with an auxiliary classifier');
    this.engine = generator.parameters()[0].engine;
  }

  /** Converts [0,1] pixels to the generator's output range (the DCGAN's tanh range is [-1, 1]). */
  toModelRange(pixels: Float32Array): Float32Array {
    if (pixelRange(this.generator.config.arch) === 'unit') return pixels;
    const out = new Float32Array(pixels.length);
    for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] * 2 - 1;
    return out;
  }

  /**
   * `discriminatorSteps` D steps and one G step on a real batch ([n,1,S,S] pixels in [0,1], labels [n]);
   * `iteration` (a global step counter) seeds the noise and augmentation, so a resumed run draws as an
   * uninterrupted one. Returns the scalar losses (of the last D step) as tensors the caller owns (nothing is
   * read back here).
   */
  step(real: Float32Array, labels: Int32Array, iteration: number): GanStepLosses {
    const rng = new Rng(mixSeed(this.seed, iteration));
    let d = this.discriminatorStep(real, labels, rng);
    for (let k = 1; k < this.discriminatorSteps; k++) {
      for (const t of Object.values(d)) t.dispose();
      d = this.discriminatorStep(real, labels, rng);
    }
    const lossG = this.generatorStep(labels, rng);
    return { ...d, lossG };
  }

  /** Updates D on real images and detached fakes; G's parameters are not touched. */
  discriminatorStep(real: Float32Array, labels: Int32Array, rng: Rng): Omit<GanStepLosses, 'lossG'> {
    const e = this.engine;
    const G = this.generator;
    const D = this.discriminator;
    const c = G.config;
    const n = labels.length;
    const S = c.imageSize;
    if (real.length !== n * S * S) throw new WgslNnError(`GAN step: ${real.length} pixels for ${n} images of ${S}x${S}`);
    return e.tidy(() => {
      this.optD.zeroGrad();
      const onehot = this.oneHotTensor(labels);
      const x = e.tensor(this.toModelRange(real), [n, 1, S, S]);
      const fake = noGrad(() => G.forward(e.tensor(latentBatch(c, labels, () => rng.normal()), [n, G.inputDim])));
      const realIn = this.aug(x, rng);
      const fakeIn = this.aug(fake, rng);
      const targets = new Float32Array(2 * n).fill(1 - this.smoothing, 0, n);
      let lossD: Tensor;
      let probs: { dReal: Tensor; dFake: Tensor };
      if (D.batchesJoin) {
        // One pass over [real; fake] (half the dispatches, twice the rows per GEMM). The mean over 2n
        // rows, doubled, is mean(real terms) + mean(fake terms): the same loss and gradients.
        const { logits, classLogits } = D.scores(F.cat([realIn, fakeIn]), onehot ? F.cat([onehot, onehot]) : null);
        const adversarial = this.hinge
          ? hingeDiscriminatorLoss(logits, new Float32Array(2 * n).fill(-1, 0, n).fill(1, n))
          : F.binaryCrossEntropyWithLogits(logits, e.tensor(targets, [2 * n, 1]));
        lossD = this.withClassLoss(F.mul(adversarial, 2), classLogits && F.narrow(classLogits, 0, n), labels);
        probs = noGrad(() => {
          // Both means in one sigmoid and one reduction over the [2, n] halves (two dispatches, not four).
          const halves = F.mean(F.reshape(F.sigmoid(logits), [2, n]), 1);
          return { dReal: F.reshape(F.narrow(halves, 0, 1), []), dFake: F.reshape(F.narrow(halves, 1, 1), []) };
        });
      } else {
        const { logits: realLogits, classLogits } = D.scores(realIn, onehot);
        const fakeLogits = D.logits(fakeIn, onehot);
        const lossReal = this.hinge ? hingeDiscriminatorLoss(realLogits, new Float32Array(n).fill(-1)) : F.binaryCrossEntropyWithLogits(realLogits, e.tensor(targets.slice(0, n), [n, 1]));
        const lossFake = this.hinge ? hingeDiscriminatorLoss(fakeLogits, new Float32Array(n).fill(1)) : F.binaryCrossEntropyWithLogits(fakeLogits, e.tensor(targets.slice(n), [n, 1]));
        lossD = this.withClassLoss(F.add(lossReal, lossFake), classLogits, labels);
        probs = noGrad(() => ({ dReal: F.mean(F.sigmoid(realLogits)), dFake: F.mean(F.sigmoid(fakeLogits)) }));
      }
      lossD.backward();
      this.optD.step();
      return { lossD: lossD.detach(), ...probs };
    });
  }

  /** Updates G through a frozen D (no gradients are computed for D's parameters; D is not updated). */
  generatorStep(labels: Int32Array, rng: Rng): Tensor {
    const e = this.engine;
    const G = this.generator;
    const D = this.discriminator;
    const n = labels.length;
    return e.tidy(() => {
      this.optG.zeroGrad();
      const dParams = D.parameters();
      for (const p of dParams) p.requiresGrad = false;
      try {
        const fake = G.forward(e.tensor(latentBatch(G.config, labels, () => rng.normal()), [n, G.inputDim]));
        const { logits, classLogits } = D.scores(this.aug(fake, rng), this.oneHotTensor(labels));
        const adversarial = this.hinge ? F.mul(F.mean(logits), -1) : F.binaryCrossEntropyWithLogits(logits, e.tensor(new Float32Array(n).fill(1), [n, 1]));
        const l = this.withClassLoss(adversarial, classLogits, labels);
        l.backward();
        this.optG.step();
        return l.detach();
      } finally {
        for (const p of dParams) p.requiresGrad = true;
      }
    });
  }

  /** loss + w CE(classLogits, labels) when D has an auxiliary classifier; the loss unchanged otherwise. */
  private withClassLoss(loss: Tensor, classLogits: Tensor | null, labels: Int32Array): Tensor {
    if (!classLogits || this.classWeight === 0) return loss;
    const ce = F.crossEntropy(classLogits, this.engine.tensor(labels, [labels.length]));
    return F.add(loss, this.classWeight === 1 ? ce : F.mul(ce, this.classWeight));
  }

  private aug(x: Tensor, rng: Rng): Tensor {
    return this.augment ? this.augment(x, rng.int(2 ** 31)) : x;
  }

  private oneHotTensor(labels: Int32Array): Tensor | null {
    const c = this.generator.config;
    return isConditional(c) ? this.engine.tensor(oneHot(labels, c.classes.length), [labels.length, c.classes.length]) : null;
  }

  dispose(): void {
    this.optG.dispose();
    this.optD.dispose();
  }
}

/**
 * The discriminator's hinge loss over logits [N, 1]: mean_i relu(1 + sign_i * l_i), sign -1 for a real row
 * (relu(1 - l)) and +1 for a fake one (relu(1 + l)). Derivative: sign_i / N where 1 + sign_i * l_i > 0, else 0.
 */
export function hingeDiscriminatorLoss(logits: Tensor, signs: Float32Array): Tensor {
  if (signs.length !== logits.shape[0]) throw new WgslNnError(`hinge loss: ${signs.length} signs for ${logits.shape[0]} logits`);
  const uniform = signs.every((v) => v === signs[0]);
  // One sign for all rows: a scalar multiply (no [N, 1] tensor to upload).
  const signed = uniform ? F.mul(logits, signs[0]) : F.mul(logits, logits.engine.tensor(signs, [signs.length, 1]));
  return F.mean(F.relu(F.add(signed, 1)));
}
