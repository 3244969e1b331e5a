// The project's GANs (src/gan/models.ts, unconditional) written with TensorFlow.js core ops in NHWC,
// and one training iteration as src/gan/step.ts runs it: a D step on the real batch and a detached
// fake batch, then a G step through D (only G's variables are differentiated, so no gradients are
// computed for D's weights), BCE with logits, Adam(lr 2e-4, beta1 0.5) for both networks.
//
//   dense: G Linear(nz,h) ReLU Linear(h,S*S) Sigmoid; D Linear(S*S,h) ReLU Linear(h,1)
//   dcgan: G ConvT(nz,c,4,1,0) BN ReLU [ConvT(c,c/2,4,2,1) BN ReLU] x (k-1) ConvT(ngf,1,4,2,1) Tanh;
//          D Conv(1,ndf,4,2,1)+bias LReLU(0.2) [Conv(c,2c,4,2,1) BN LReLU] x (k-1) Conv(c,1,4,1,0)
//
// BatchNorm is training-mode (batch statistics from tf.moments, then tf.batchNorm); the running
// statistics that torch and wgsl-nn also update are not tracked here (a few per-channel ops).
import type * as TF from '@tensorflow/tfjs-core';
import { caseData } from './kernel-cases.js';
import type { PeerCase } from './cases.js';
import type { TfStep } from './tfjs.js';

type Tf = typeof TF;
type GanParams = Extract<PeerCase, { key: 'gan' }>['params'];

export function ganIteration(tf: Tf, p: GanParams): TfStep {
  const n = p.batch;
  const S = p.size;
  const vars: TF.Variable[] = [];
  const normal = (shape: number[], mean: number, std: number) => {
    const v = tf.variable(tf.randomNormal(shape, mean, std, 'float32', 7 + vars.length));
    vars.push(v);
    return v;
  };
  const uniform = (shape: number[], fanIn: number) => {
    const bound = 1 / Math.sqrt(fanIn);
    const v = tf.variable(tf.randomUniform(shape, -bound, bound, 'float32', 7 + vars.length));
    vars.push(v);
    return v;
  };
  const zeros = (shape: number[]) => {
    const v = tf.variable(tf.zeros(shape));
    vars.push(v);
    return v;
  };
  let G: (z: TF.Tensor2D) => TF.Tensor4D;
  let D: (x: TF.Tensor4D) => TF.Tensor2D;
  let gVars: TF.Variable[];
  let dVars: TF.Variable[];
  if (p.arch === 'dense') {
    const h = p.hidden;
    const g1 = { w: uniform([p.latent, h], p.latent), b: uniform([h], p.latent) };
    const g2 = { w: uniform([h, S * S], h), b: uniform([S * S], h) };
    const d1 = { w: uniform([S * S, h], S * S), b: uniform([h], S * S) };
    const d2 = { w: uniform([h, 1], h), b: uniform([1], h) };
    gVars = [g1.w, g1.b, g2.w, g2.b];
    dVars = [d1.w, d1.b, d2.w, d2.b];
    G = (z) => {
      const a = tf.fused.matMul({ a: z, b: g1.w as TF.Tensor2D, bias: g1.b, activation: 'relu' });
      // (tfjs's fused matMul has no gradient for a fused sigmoid.)
      return tf.reshape(tf.sigmoid(tf.fused.matMul({ a, b: g2.w as TF.Tensor2D, bias: g2.b })), [n, S, S, 1]);
    };
    D = (x) => {
      const a = tf.fused.matMul({ a: tf.reshape(x, [x.shape[0], S * S]) as TF.Tensor2D, b: d1.w as TF.Tensor2D, bias: d1.b, activation: 'relu' });
      return tf.fused.matMul({ a, b: d2.w as TF.Tensor2D, bias: d2.b }) as TF.Tensor2D;
    };
  } else {
    const k = Math.log2(S / 4);
    const bn = (x: TF.Tensor4D, gamma: TF.Variable, beta: TF.Variable) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return tf.batchNorm(x, mean, variance, beta, gamma, 1e-5);
    };
    // Generator: filters [k, k, out, in] (tf.conv2dTranspose's layout), DCGAN init N(0, 0.02).
    let ch = p.ngf * 2 ** (k - 1);
    const gLayers: { w: TF.Variable; gamma?: TF.Variable; beta?: TF.Variable; out: number; stride: number; pad: number | 'valid' }[] = [];
    gLayers.push({ w: normal([4, 4, ch, p.latent], 0, 0.02), gamma: normal([ch], 1, 0.02), beta: zeros([ch]), out: ch, stride: 1, pad: 'valid' });
    for (let i = 0; i < k - 1; i++) {
      gLayers.push({ w: normal([4, 4, ch / 2, ch], 0, 0.02), gamma: normal([ch / 2], 1, 0.02), beta: zeros([ch / 2]), out: ch / 2, stride: 2, pad: 1 });
      ch /= 2;
    }
    gLayers.push({ w: normal([4, 4, 1, ch], 0, 0.02), out: 1, stride: 2, pad: 1 });
    gVars = [...vars];
    G = (z) => {
      let h = tf.reshape(z, [z.shape[0], 1, 1, p.latent]) as TF.Tensor4D;
      let side = 1;
      for (const l of gLayers) {
        side = l.stride === 1 ? 4 : side * 2;
        h = tf.conv2dTranspose(h, l.w as TF.Tensor4D, [h.shape[0], side, side, l.out], l.stride, l.pad);
        h = (l.gamma ? tf.relu(bn(h, l.gamma, l.beta!)) : tf.tanh(h)) as TF.Tensor4D;
      }
      return h;
    };
    // Discriminator: filters HWIO.
    ch = p.ndf;
    const first = { w: normal([4, 4, 1, ch], 0, 0.02), b: zeros([ch]) };
    const blocks: { w: TF.Variable; gamma: TF.Variable; beta: TF.Variable }[] = [];
    for (let i = 0; i < k - 1; i++) {
      blocks.push({ w: normal([4, 4, ch, ch * 2], 0, 0.02), gamma: normal([ch * 2], 1, 0.02), beta: zeros([ch * 2]) });
      ch *= 2;
    }
    const head = normal([4, 4, ch, 1], 0, 0.02);
    dVars = vars.slice(gVars.length);
    D = (x) => {
      let h = tf.leakyRelu(tf.add(tf.conv2d(x, first.w as TF.Tensor4D, 2, 1), first.b), 0.2) as TF.Tensor4D;
      for (const b of blocks) h = tf.leakyRelu(bn(tf.conv2d(h, b.w as TF.Tensor4D, 2, 1), b.gamma, b.beta), 0.2) as TF.Tensor4D;
      return tf.reshape(tf.conv2d(h, head as TF.Tensor4D, 1, 'valid'), [x.shape[0], 1]);
    };
  }
  let realPixels = caseData(n * S * S, 11, 0, 1);
  if (p.arch === 'dcgan') realPixels = realPixels.map((v) => v * 2 - 1); // tanh range
  const real = tf.tensor4d(realPixels, [n, S, S, 1]); // C = 1: NCHW = NHWC
  const ones = tf.ones([n, 1]);
  const zerosT = tf.zeros([n, 1]);
  const optG = tf.train.adam(2e-4, 0.5, 0.999);
  const optD = tf.train.adam(2e-4, 0.5, 0.999);
  const noise = () => tf.randomNormal([n, p.latent]) as TF.Tensor2D;
  const bce = (labels: TF.Tensor, logits: TF.Tensor) => tf.losses.sigmoidCrossEntropy(labels, logits) as TF.Scalar;
  return {
    async step() {
      const fake = tf.tidy(() => G(noise()));
      const lossD = optD.minimize(() => tf.add(bce(ones, D(real)), bce(zerosT, D(fake))) as TF.Scalar, true, dVars)!;
      fake.dispose();
      const lossG = optG.minimize(() => bce(ones, D(G(noise()))), true, gVars)!;
      const [d, g] = await Promise.all([lossD.data(), lossG.data()]);
      lossD.dispose();
      lossG.dispose();
      if (!Number.isFinite(d[0] + g[0])) throw new Error(`tfjs GAN losses ${d[0]}, ${g[0]}`);
    },
    async check() {
      // Dropped GPU work leaves constant (zero) outputs: a generated batch must vary.
      const spread = tf.tidy(() => {
        const g = G(noise());
        return tf.sub(tf.max(g), tf.min(g));
      });
      const s = (await spread.data())[0];
      spread.dispose();
      return s > 0 && Number.isFinite(s) ? undefined : `generated images are constant (max - min = ${s})`;
    },
    dispose() {
      optG.dispose();
      optD.dispose();
      vars.forEach((v) => v.dispose());
      [real, ones, zerosT].forEach((t) => t.dispose());
    },
  };
}
