// The GAN architectures: the seed's dense GAN (seed 000, reproduced as written) and a DCGAN for
// 64x64 grayscale defect images, both optionally class-conditional.
//
// Conditioning (one model for all classes, the class as input):
//   generator     the one-hot class is appended to the noise vector (Mirza & Osindero 2014), and with
//                 conditionalBatchNorm every BatchNorm's scale and shift are the class's own
//                 (de Vries et al. 2017; Miyato & Koyama 2018), so the class reaches every layer;
//   discriminator projection (Miyato & Koyama 2018): logit = head(phi(x)) + <embed(y), pool(phi(x))>,
//                 which keeps the unconditional network intact and adds one inner product; with
//                 auxiliaryClassifier also class logits = classifier(pool(phi(x))) (AC-GAN, Odena et al.
//                 2017), trained on real images by D and pushed towards the drawn class by G (step.ts).
// With a single class both reduce exactly to the unconditional seed/DCGAN networks.
//
// Every network is built from torch.nn-equivalent modules with torch's state-dict names, so the
// weights load into the same PyTorch modules (documented per class below).
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import * as F from '../nn/functional.js';
import { nn } from '../nn/index.js';
import { globalRng } from '../nn/seed.js';
import type { Tensor } from '../nn/tensor.js';

export type GanArch = 'dense' | 'dcgan';

export interface GanConfig {
  arch: GanArch;
  /** Side S of the square grayscale images (dense: any, default 28; dcgan: 4 * 2^k >= 16, default 64). */
  imageSize: number;
  /** Class names; more than one makes the model class-conditional. */
  classes: string[];
  /** Noise dimension (the seed's 100). */
  latentDim?: number;
  /** Dense GAN hidden width (the seed's 128). */
  hidden?: number;
  /** DCGAN generator / discriminator base widths. */
  ngf?: number;
  ndf?: number;
  /**
   * BatchNorm2d in the DCGAN discriminator's inner blocks (default: true, as DCGAN, unless
   * spectralNorm is on: SN-GAN's discriminator has none, and the Lipschitz bound spectral norm gives
   * does not hold through batch statistics).
   */
  discriminatorBatchNorm?: boolean;
  /**
   * Spectral normalisation (torch.nn.utils.spectral_norm, one power step per forward) of every Conv2d
   * and Linear weight of the discriminator, the class embedding included (Miyato et al. 2018; Miyato &
   * Koyama 2018). Default false; model directories written before the option have none.
   */
  spectralNorm?: boolean;
  /**
   * Class-conditional BatchNorm in the DCGAN generator of a conditional model: each BatchNorm2d is
   * affine-free and the class's one-hot picks its scale and shift (ConditionalBatchNorm2d). Default
   * false; model directories written before the option have none.
   */
  conditionalBatchNorm?: boolean;
  /**
   * An auxiliary classifier head on the discriminator of a conditional model (AC-GAN, Odena et al. 2017):
   * Linear(width, K) on the pooled body features, beside the projection. D learns the classes of real
   * images; G is rewarded when D's head assigns its samples to the drawn class. Default false.
   */
  auxiliaryClassifier?: boolean;
  /**
   * How the DCGAN generator doubles the resolution: 'transposed' (DCGAN's ConvTranspose2d(4, 2, 1), the
   * default, and every model directory written before the option) or 'nearest', a resize-convolution
   * Upsample(2, nearest) + Conv2d(3, 1, 1): every output pixel then gets the same number of kernel taps,
   * which removes the checkerboard patterns strided transposed convolutions draw (Odena et al., Distill 2016).
   */
  upsampling?: GeneratorUpsampling;
}

export type GeneratorUpsampling = 'transposed' | 'nearest';

export type ResolvedGanConfig = Required<GanConfig>;

export function resolveGanConfig(c: GanConfig): ResolvedGanConfig {
  const r: ResolvedGanConfig = {
    arch: c.arch,
    imageSize: c.imageSize,
    classes: c.classes,
    latentDim: c.latentDim ?? 100,
    hidden: c.hidden ?? 128,
    ngf: c.ngf ?? 32,
    ndf: c.ndf ?? 32,
    discriminatorBatchNorm: c.discriminatorBatchNorm ?? !(c.spectralNorm ?? false),
    spectralNorm: c.spectralNorm ?? false,
    conditionalBatchNorm: c.conditionalBatchNorm ?? false,
    auxiliaryClassifier: c.auxiliaryClassifier ?? false,
    upsampling: c.upsampling ?? 'transposed',
  };
  if (r.arch !== 'dense' && r.arch !== 'dcgan') throw new WgslNnError(`unknown GAN architecture '${String(r.arch)}' (dense or dcgan)`);
  if (!Number.isInteger(r.imageSize) || r.imageSize < 4) throw new WgslNnError(`image size must be an integer >= 4, got ${r.imageSize}`);
  if (r.arch === 'dcgan') dcganDepth(r.imageSize);
  if (r.classes.length < 1) throw new WgslNnError('a GAN needs at least one class');
  if (r.conditionalBatchNorm && (r.arch !== 'dcgan' || r.classes.length < 2))
    throw new WgslNnError('conditional BatchNorm needs a class-conditional DCGAN (arch dcgan, two or more classes)');
  if (r.upsampling !== 'transposed' && r.upsampling !== 'nearest') throw new WgslNnError(`unknown generator upsampling '${String(r.upsampling)}' (transposed or nearest)`);
  if (r.upsampling === 'nearest' && r.arch !== 'dcgan') throw new WgslNnError("nearest upsampling is a DCGAN generator option (--arch dcgan)");
  if (r.auxiliaryClassifier && r.classes.length < 2) throw new WgslNnError('an auxiliary classifier needs a class-conditional model (two or more classes)');
  for (const [k, v] of [['latentDim', r.latentDim], ['hidden', r.hidden], ['ngf', r.ngf], ['ndf', r.ndf]] as const)
    if (!Number.isInteger(v) || v < 1) throw new WgslNnError(`${k} must be a positive integer, got ${v}`);
  return r;
}

/** Number of stride-2 up/down blocks k with S = 4 * 2^k. */
export function dcganDepth(size: number): number {
  const k = Math.log2(size / 4);
  if (!Number.isInteger(k) || k < 2) throw new WgslNnError(`DCGAN image size must be 4 * 2^k with k >= 2 (16, 32, 64, 128, ...), got ${size}`);
  return k;
}

/** Pixel range of the generator's output: the dense GAN ends in sigmoid, the DCGAN in tanh. */
export function pixelRange(arch: GanArch): 'unit' | 'signed' {
  return arch === 'dense' ? 'unit' : 'signed';
}

export const isConditional = (c: ResolvedGanConfig): boolean => c.classes.length > 1;

/** DCGAN initialisation (Radford et al. 2016): conv and dense weights N(0, 0.02), BN weights N(1, 0.02), biases 0. */
function dcganInit(m: nn.Module): void {
  const rng = globalRng();
  const set = (t: Tensor, mean: number, std: number): void => {
    const data = new Float32Array(t.size);
    for (let i = 0; i < data.length; i++) data[i] = mean + std * rng.normal();
    t.setValue(t.engine.fromArray(data, t.shape));
  };
  if (m instanceof ConditionalBatchNorm2d) {
    // Every class's scale starts as an ordinary BatchNorm weight's would: N(1, 0.02); shifts 0.
    set(m.gamma.weight, 1, 0.02);
    set(m.beta.weight, 0, 0);
    return;
  }
  if (m instanceof nn.Conv2d || m instanceof nn.ConvTranspose2d || m instanceof nn.Linear || m instanceof nn.BatchNorm2d) {
    set(m.weight, m instanceof nn.BatchNorm2d ? 1 : 0, 0.02);
    if (m.bias) set(m.bias, 0, 0);
  }
  for (const c of m.children()) dcganInit(c);
}

/**
 * BatchNorm whose scale and shift depend on the class (conditional BatchNorm, de Vries et al. 2017):
 *   y = BN(x) * gamma(y1h)[:, :, None, None] + beta(y1h)[:, :, None, None]
 * In torch: bn = BatchNorm2d(C, affine=False), gamma = Linear(K, C, bias=False), beta = Linear(K, C,
 * bias=False); with a one-hot y1h, column k of gamma.weight / beta.weight is class k's scale / shift.
 */
export class ConditionalBatchNorm2d extends nn.Module {
  readonly bn: nn.BatchNorm2d;
  readonly gamma: nn.Linear;
  readonly beta: nn.Linear;

  constructor(
    readonly numFeatures: number,
    readonly classes: number,
    options: { engine?: Engine } = {},
  ) {
    super();
    this.bn = this.registerModule('bn', new nn.BatchNorm2d(numFeatures, { ...options, affine: false }));
    this.gamma = this.registerModule('gamma', new nn.Linear(classes, numFeatures, { ...options, bias: false }));
    this.beta = this.registerModule('beta', new nn.Linear(classes, numFeatures, { ...options, bias: false }));
  }

  /** x [N, C, H, W], onehot [N, K]. */
  forward(x: Tensor, onehot?: Tensor): Tensor {
    if (!onehot) throw new WgslNnError('ConditionalBatchNorm2d needs the one-hot classes');
    const perSample = [x.shape[0], this.numFeatures, 1, 1];
    // d/dgamma(y) = sum_hw dy * BN(x), d/dbeta(y) = sum_hw dy: the broadcast mul/add sum over H, W.
    const scale = F.reshape(this.gamma.forward(onehot), perSample);
    const shift = F.reshape(this.beta.forward(onehot), perSample);
    return F.add(F.mul(this.bn.forward(x), scale), shift);
  }
}

/**
 * Generator: noise (+ one-hot class) [N, latentDim (+K)] -> images [N, 1, S, S].
 *   dense: torch.nn.Sequential(Linear(nz, hidden), ReLU, Linear(hidden, S*S), Sigmoid)   (the seed)
 *   dcgan: torch.nn.Sequential(ConvTranspose2d(nz, ngf*2^(k-1), 4, 1, 0, bias=False), BatchNorm2d, ReLU,
 *          [ConvTranspose2d(c, c/2, 4, 2, 1, bias=False), BatchNorm2d, ReLU] x (k-1),
 *          ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), Tanh)     on z viewed as [N, nz, 1, 1]
 *   upsampling 'nearest': each stride-2 ConvTranspose2d(c, c', 4, 2, 1) above is the two modules
 *          Upsample(scale_factor=2, mode='nearest'), Conv2d(c, c', 3, 1, 1, bias=False) (one index each in net)
 *   conditionalBatchNorm: each BatchNorm2d above is a ConditionalBatchNorm2d fed the one-hot part of z
 *          (same indices in net; its state-dict entries net.i.bn.running_*, net.i.gamma.weight, ...).
 */
export class Generator extends nn.Module {
  readonly net: nn.Sequential;
  readonly inputDim: number;
  /** [K, inputDim] 0/1 matrix with z @ it^T = z's one-hot columns (conditionalBatchNorm only; not state). */
  private selector: Tensor | null = null;

  constructor(
    readonly config: ResolvedGanConfig,
    engine?: Engine,
  ) {
    super();
    const o = { engine };
    const c = config;
    this.inputDim = c.latentDim + (isConditional(c) ? c.classes.length : 0);
    const S = c.imageSize;
    if (c.arch === 'dense') {
      this.net = new nn.Sequential(new nn.Linear(this.inputDim, c.hidden, o), new nn.ReLU(), new nn.Linear(c.hidden, S * S, o), new nn.Sigmoid());
    } else {
      const k = dcganDepth(S);
      const layers: nn.Module[] = [];
      let ch = c.ngf * 2 ** (k - 1);
      const norm = (channels: number) =>
        c.conditionalBatchNorm ? new ConditionalBatchNorm2d(channels, c.classes.length, o) : new nn.BatchNorm2d(channels, o);
      layers.push(new nn.ConvTranspose2d(this.inputDim, ch, 4, { ...o, stride: 1, padding: 0, bias: false }), norm(ch), new nn.ReLU());
      // Doubling the resolution: a strided transposed convolution, or a resize-convolution.
      const up = (from: number, to: number): nn.Module[] =>
        c.upsampling === 'nearest'
          ? [new nn.Upsample(2), new nn.Conv2d(from, to, 3, { ...o, stride: 1, padding: 1, bias: false })]
          : [new nn.ConvTranspose2d(from, to, 4, { ...o, stride: 2, padding: 1, bias: false })];
      for (let i = 0; i < k - 1; i++) {
        layers.push(...up(ch, ch / 2), norm(ch / 2), new nn.ReLU());
        ch /= 2;
      }
      layers.push(...up(ch, 1), new nn.Tanh());
      this.net = new nn.Sequential(...layers);
      dcganInit(this.net);
    }
    this.registerModule('net', this.net);
  }

  private classColumns(z: Tensor): Tensor {
    if (!this.selector) {
      const { latentDim, classes } = this.config;
      const w = new Float32Array(classes.length * this.inputDim);
      for (let k = 0; k < classes.length; k++) w[k * this.inputDim + latentDim + k] = 1;
      this.selector = z.engine.keep(z.engine.tensor(w, [classes.length, this.inputDim]));
    }
    return this.selector;
  }

  override dispose(): void {
    super.dispose();
    this.selector?.dispose();
    this.selector = null;
  }

  /** z: [N, inputDim] (noise with the one-hot class appended when conditional). */
  forward(z: Tensor): Tensor {
    const n = z.shape[0];
    const S = this.config.imageSize;
    if (this.config.arch === 'dense') return F.reshape(this.net.forward(z), [n, 1, S, S]);
    const x = F.reshape(z, [n, this.inputDim, 1, 1]);
    if (!this.config.conditionalBatchNorm) return this.net.forward(x);
    // The layers one by one, the class's one-hot (z's last K columns, picked by an exact 0/1 product)
    // handed to each conditional BatchNorm.
    const onehot = F.linear(z, this.classColumns(z));
    let h = x;
    for (const layer of this.net.layers) h = layer instanceof ConditionalBatchNorm2d ? layer.forward(h, onehot) : layer.forward(h);
    return h;
  }
}

/**
 * Discriminator: images [N, 1, S, S] (+ one-hot class [N, K]) -> logits [N, 1].
 *   dense: body = Sequential(Flatten, Linear(S*S, hidden), ReLU), head = Linear(hidden, 1) (+ the
 *          seed's Sigmoid, folded into BCE-with-logits for stability: same loss, same gradients)
 *   dcgan: body = Sequential(Conv2d(1, ndf, 4, 2, 1), LeakyReLU(0.2), [Conv2d(c, 2c, 4, 2, 1, bias=False),
 *          BatchNorm2d(2c), LeakyReLU(0.2)] x (k-1)), head = Conv2d(ndf*2^(k-1), 1, 4, 1, 0, bias=False)
 *   conditional: embed = Linear(K, width, bias=False); logit += sum(embed(y) * mean_hw(body(x)))
 *   auxiliaryClassifier: classifier = Linear(width, K); class logits = classifier(mean_hw(body(x)))
 *   spectralNorm: torch.nn.utils.spectral_norm applied to every Conv2d and Linear above (embed too),
 *          after the DCGAN initialisation of their weights; the state dict then has weight_orig,
 *          weight_u, weight_v in place of weight (torch's names).
 */
export class Discriminator extends nn.Module {
  readonly body: nn.Sequential;
  readonly head: nn.Linear | nn.Conv2d;
  readonly embed: nn.Linear | null;
  readonly classifier: nn.Linear | null;

  constructor(
    readonly config: ResolvedGanConfig,
    engine?: Engine,
  ) {
    super();
    const o = { engine };
    const c = config;
    const S = c.imageSize;
    let width: number;
    if (c.arch === 'dense') {
      width = c.hidden;
      this.body = new nn.Sequential(new nn.Flatten(), new nn.Linear(S * S, c.hidden, o), new nn.ReLU());
      this.head = new nn.Linear(c.hidden, 1, o);
    } else {
      const k = dcganDepth(S);
      let ch = c.ndf;
      const layers: nn.Module[] = [new nn.Conv2d(1, ch, 4, { ...o, stride: 2, padding: 1 }), new nn.LeakyReLU(0.2)];
      for (let i = 0; i < k - 1; i++) {
        const bn = c.discriminatorBatchNorm;
        layers.push(new nn.Conv2d(ch, ch * 2, 4, { ...o, stride: 2, padding: 1, bias: !bn }));
        if (bn) layers.push(new nn.BatchNorm2d(ch * 2, o));
        layers.push(new nn.LeakyReLU(0.2));
        ch *= 2;
      }
      width = ch;
      this.body = new nn.Sequential(...layers);
      this.head = new nn.Conv2d(ch, 1, 4, { ...o, stride: 1, padding: 0, bias: false });
    }
    this.embed = isConditional(c) ? new nn.Linear(c.classes.length, width, { ...o, bias: false }) : null;
    this.registerModule('body', this.body);
    this.registerModule('head', this.head);
    if (this.embed) this.registerModule('embed', this.embed);
    // Registered last, so a model without it draws its initial weights exactly as before the option.
    this.classifier = c.auxiliaryClassifier ? new nn.Linear(width, c.classes.length, o) : null;
    if (this.classifier) this.registerModule('classifier', this.classifier);
    if (c.arch === 'dcgan') dcganInit(this);
    if (c.spectralNorm) applySpectralNorm(this);
  }

  /**
   * Whether one forward over a batch [a; b] gives what two forwards over a and b give, with the same
   * state afterwards: no batch statistics (BatchNorm) and no per-forward state (spectral norm's power
   * iteration). The D step then scores real and fake images in one pass.
   */
  get batchesJoin(): boolean {
    return !this.config.spectralNorm && (this.config.arch === 'dense' || !this.config.discriminatorBatchNorm);
  }

  /** Logits [N, 1]; `onehot` [N, K] is required for a conditional model and ignored otherwise. */
  logits(x: Tensor, onehot: Tensor | null = null): Tensor {
    return this.scores(x, onehot).logits;
  }

  /** Real/fake logits [N, 1] and, with an auxiliary classifier, class logits [N, K] from the same body pass. */
  scores(x: Tensor, onehot: Tensor | null = null): { logits: Tensor; classLogits: Tensor | null } {
    const n = x.shape[0];
    const phi = this.body.forward(x);
    const out = F.reshape(this.head.forward(phi), [n, 1]);
    if (!this.embed) return { logits: out, classLogits: null };
    if (!onehot) throw new WgslNnError('this discriminator is class-conditional: pass the one-hot classes');
    const pooled = phi.shape.length === 4 ? F.mean(phi, [2, 3]) : phi;
    const projection = F.sum(F.mul(this.embed.forward(onehot), pooled), 1, true);
    return { logits: F.add(out, projection), classLogits: this.classifier ? this.classifier.forward(pooled) : null };
  }

  forward(x: Tensor): Tensor {
    return this.logits(x);
  }
}

/** Spectral normalisation of every Conv2d and Linear below `m`, depth first (u, v drawn in that order). */
function applySpectralNorm(m: nn.Module): void {
  for (const c of m.children()) {
    if (c instanceof nn.Conv2d || c instanceof nn.Linear) nn.spectralNorm(c);
    else applySpectralNorm(c);
  }
}

/** Generator input [n, latentDim (+K)] on the host: N(0,1) noise from `rng`, one-hot class appended. */
export function latentBatch(
  config: ResolvedGanConfig,
  labels: ArrayLike<number>,
  normal: () => number,
): Float32Array {
  const n = labels.length;
  const K = isConditional(config) ? config.classes.length : 0;
  const d = config.latentDim + K;
  const z = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < config.latentDim; j++) z[i * d + j] = normal();
    if (K) z[i * d + config.latentDim + labels[i]] = 1;
  }
  return z;
}

/** One-hot rows [n, K] for the discriminator's projection. */
export function oneHot(labels: ArrayLike<number>, classes: number): Float32Array {
  const out = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) out[i * classes + labels[i]] = 1;
  return out;
}

