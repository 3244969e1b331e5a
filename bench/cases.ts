// The benchmark cases: kernel cases (one op on one shape; every registered variant of the op is timed)
// and end-to-end cases (the public API with read-back: the seed CNN's training step and inference, the
// seed dense GAN and a DCGAN iteration, and the headline GEMM and convolution).
//
// Kernel cases come from the builders in bench/kernel-cases.ts (`opCases`), which the autotuner also
// uses. To add a case, add a line to `kernelCases()` or `endToEndCases()` (see bench/README.md).
// The peers: bench/tfjs.ts (TensorFlow.js WebGPU) and bench/torch_peer.py (PyTorch CPU) build the
// same case from the kernel case's op, params and input specs, or from an end-to-end case's `peer`.
import { DefectClassifier } from '../src/cnn/model.js';
import { Discriminator, Generator, resolveGanConfig, type GanConfig } from '../src/gan/models.js';
import { GanStep } from '../src/gan/step.js';
import type { Engine } from '../src/gpu/engine.js';
import { opCases, caseData, type KernelCase } from './kernel-cases.js';
import * as F from '../src/nn/functional.js';
import { Adam } from '../src/nn/optim.js';
import { noGrad, type Tensor } from '../src/nn/tensor.js';

/** A kernel case with the group it is listed under. */
export interface BenchKernelCase extends KernelCase {
  group: string;
  /** Key of the TensorFlow.js counterpart (bench/tfjs.ts), if there is one. */
  tfjs?: string;
}

const tag = (group: string, cs: KernelCase[], tfjs?: (c: KernelCase) => string | undefined): BenchKernelCase[] =>
  cs.map((c) => ({ ...c, group, tfjs: tfjs?.(c) }));

/** Every kernel case of the suite, in run order (--quick keeps the shapes and only shortens the timing). */
export function kernelCases(): BenchKernelCase[] {
  const convTf = (name: string) => (c: KernelCase) => `${name}:${c.op}`;
  return [
    // The seed CNN at batch 32 and 64x64 input: conv(3x3, no padding) + ReLU + max-pool(2) x 3.
    ...tag('seed conv1 1->32 64x64 b32', opCases.conv2d(32, 1, 32, 64, 64, 3), convTf('conv1')),
    ...tag('seed conv2 32->64 31x31 b32', opCases.conv2d(32, 32, 64, 31, 31, 3), convTf('conv2')),
    ...tag('seed conv3 64->128 14x14 b32', opCases.conv2d(32, 64, 128, 14, 14, 3), convTf('conv3')),
    // A dense layer of the seed's size class (the seed CNN at 64x64 itself has 128*6*6 = 4608 inputs).
    ...tag('linear 3200->128 b32', opCases.linear(32, 3200, 128)),
    // The seed dense GAN's two big layers: G's Linear(128 -> 784) at batch 128 and D's Linear(784 -> 128)
    // over real and fake joined (batch 256). Small GEMMs, where per-dispatch cost and tile fill matter.
    ...tag('dense GAN G linear 128->784 b128', opCases.linear(128, 128, 784)),
    ...tag('dense GAN D linear 784->128 b256', opCases.linear(256, 784, 128)),
    ...tag('matmul 256^3', [opCases.matmul(256, 256, 256)], () => 'matmul256'),
    ...tag('matmul 512^3', [opCases.matmul(512, 512, 512)], () => 'matmul512'),
    // DCGAN discriminator block: a strided conv (kernel 4, stride 2, padding 1), 32x32 -> 16x16; batch 8
    // keeps its share of the suite's time small.
    ...tag('dcgan D conv 64->128 32->16 b8', opCases.conv2d(8, 64, 128, 32, 32, 4, 2, 1), convTf('convD')),
    // DCGAN generator block: 128 -> 64 channels, 8x8 -> 16x16, kernel 4, stride 2, padding 1.
    ...tag('dcgan convT 128->64 8->16 b32', opCases.convTranspose2d(32, 128, 64, 8, 8, 4, 2, 1), convTf('convT')),
    // The same block as a resize-convolution (`gan train --upsampling nearest`): upsample 2x, then a 3x3
    // convolution with padding 1 at 16x16 (2.25x the transposed convolution's multiply-adds).
    ...tag('dcgan resize-conv: upsample [32,128,8,8] x2', opCases.upsampleNearest2d([32, 128, 8, 8], 2)),
    ...tag('dcgan resize-conv: conv 128->64 16x16 p1 b32', opCases.conv2d(32, 128, 64, 16, 16, 3, 1, 1)),
    ...tag('maxpool 2x2 [32,32,62,62]', opCases.maxPool2d([32, 32, 62, 62], 2, 2)),
    ...tag('softmax [256,1000]', opCases.softmax(256, 1000)),
    ...tag('batchnorm train [32,32,32,32]', opCases.batchNorm2d([32, 32, 32, 32])),
    ...tag('add bias broadcast', [opCases.binary([32, 32, 62, 62], [1, 32, 1, 1], 'add')]),
    ...tag('adam 1M params', [opCases.adam(1 << 20)]),
    // The anomaly detector's memory search: 2,048 feature cells (part of one magnetic tile) against its
    // 16,384 memory vectors of 64 features.
    ...tag('anomaly memory search 2048 x 16384 x 64', [opCases.nearest(2048, 16384, 64)]),
  ];
}

/** The peer implementation of an end-to-end case: a key both peers know and its sizes. */
export type PeerCase =
  | { key: 'seed-train' | 'seed-infer'; params: { batch: number; size: number; classes: number } }
  | { key: 'gan'; params: { arch: 'dense'; batch: number; size: number; latent: number; hidden: number } }
  | { key: 'gan'; params: { arch: 'dcgan'; batch: number; size: number; latent: number; ngf: number; ndf: number } }
  | { key: 'linear-readback'; params: { m: number; n: number; k: number } }
  | { key: 'conv-readback'; params: { n: number; c: number; o: number; h: number; w: number; k: number } };

/** An end-to-end case: `setup` builds the model; `step()` runs once and resolves when the GPU is done. */
export interface EndToEndCase {
  name: string;
  /** Images per step (for images/s; a GAN iteration counts its real batch); none for a plain GEMM. */
  images?: number;
  /** Floating-point operations per step, for single-op cases (GFLOP/s). */
  flops?: number;
  /** What the peers (TensorFlow.js, PyTorch) run for this case. */
  peer: PeerCase;
  setup(engine: Engine): { step(): Promise<void>; dispose(): void };
}

const BATCH = 32;
const SIZE = 64;
const CLASSES = ['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot'];

/** The seed CNN's batch: pixels in [0,1) and integer labels (deterministic). */
export function seedBatch(batch = BATCH, size = SIZE): { pixels: Float32Array; labels: Int32Array } {
  const pixels = caseData(batch * size * size, 11, 0, 1);
  const labels = Int32Array.from({ length: batch }, (_, i) => i % CLASSES.length);
  return { pixels, labels };
}

export const SEED_CNN = { batch: BATCH, size: SIZE, classes: CLASSES.length, channels: [32, 64, 128] as const, hidden: 128 };

/** The seed CNN's training step (zeroGrad, forward, cross-entropy, backward, Adam; the loss read back). */
function seedTrainCase(batch: number, size: number): EndToEndCase {
  return {
    name: `seed CNN training step (fwd + bwd + Adam), b${batch} ${size}x${size}`,
    images: batch,
    peer: { key: 'seed-train', params: { batch, size, classes: CLASSES.length } },
    setup(engine) {
      const model = new DefectClassifier({ task: 'multiclass', classes: CLASSES, inputSize: size }, engine);
      model.train();
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const { pixels, labels } = seedBatch(batch, size);
      const x = engine.keep(model.inputTensor(pixels, batch));
      const y = engine.keep(engine.tensor(labels, [batch]));
      return {
        async step() {
          const loss = engine.tidy(() => {
            opt.zeroGrad();
            const l = F.crossEntropy(model.logits(x), y);
            l.backward();
            opt.step();
            return l;
          });
          // Reading the loss waits for the whole step (as a training loop does).
          try {
            const v = await loss.item();
            if (!Number.isFinite(v)) throw new Error(`loss is ${v}`);
          } finally {
            loss.dispose();
          }
        },
        dispose() {
          opt.zeroGrad();
          opt.dispose();
          model.dispose();
          x.dispose();
          y.dispose();
        },
      };
    },
  };
}

/**
 * One GAN iteration of the project's trainer (src/gan/step.ts GanStep.step: a D step on real and
 * detached fake images, then a G step through the frozen D; BCE with logits; Adam lr 2e-4, beta1 0.5;
 * no augmentation), both losses read back.
 */
function ganCase(name: string, config: GanConfig, batch: number, peer: PeerCase): EndToEndCase {
  return {
    name,
    images: batch,
    peer,
    setup(engine) {
      const c = resolveGanConfig(config);
      const G = new Generator(c, engine);
      const D = new Discriminator(c, engine);
      G.train();
      D.train();
      const gan = new GanStep(G, D, { lrG: 2e-4, lrD: 2e-4, beta1: 0.5, augment: null });
      const real = caseData(batch * c.imageSize * c.imageSize, 11, 0, 1);
      const labels = new Int32Array(batch);
      let iteration = 0;
      return {
        async step() {
          const l = gan.step(real, labels, iteration++);
          try {
            const [lossD, lossG] = await Promise.all([l.lossD.item(), l.lossG.item()]);
            if (!Number.isFinite(lossD + lossG)) throw new Error(`losses ${lossD}, ${lossG}`);
          } finally {
            for (const t of Object.values(l)) t.dispose();
          }
        },
        dispose() {
          gan.dispose();
          G.dispose();
          D.dispose();
        },
      };
    },
  };
}

/**
 * Cases that the probes time (bench/profile-step.ts, bench/col2im-ab.ts) but `npm run bench` does not:
 * the iteration of the NEU GAN recipe (ngf = ndf = 16, spectral norm in D, class-conditional on NEU's 6
 * classes, batch 64; the labels here are all class 0), with the transposed-convolution generator shipped
 * until the sixteenth session and with the resize-convolution one shipped since (models/neu-gan, R25, which
 * also takes two D steps per G step: one more D step than timed here).
 */
export function probeCases(): EndToEndCase[] {
  return [
    ganCase('NEU GAN iteration (models/neu-gan recipe: ngf = ndf = 16, spectral norm, 6 classes), b64 64x64',
      { arch: 'dcgan', imageSize: 64, classes: ['a', 'b', 'c', 'd', 'e', 'f'], ngf: 16, ndf: 16, spectralNorm: true }, 64,
      { key: 'gan', params: { arch: 'dcgan', batch: 64, size: 64, latent: 100, ngf: 16, ndf: 16 } }),
    ganCase('NEU GAN iteration with a resize-convolution generator (the recipe above, --upsampling nearest), b64 64x64',
      { arch: 'dcgan', imageSize: 64, classes: ['a', 'b', 'c', 'd', 'e', 'f'], ngf: 16, ndf: 16, spectralNorm: true, upsampling: 'nearest' }, 64,
      // (Probe cases run without peers; this names the nearest peer network, which has transposed convolutions.)
      { key: 'gan', params: { arch: 'dcgan', batch: 64, size: 64, latent: 100, ngf: 16, ndf: 16 } }),
  ];
}

/**
 * The one end-to-end or probe case whose name contains `fragment` (case-insensitive), for the probes that
 * take a case by name (bench/profile-step.ts, bench/step-time.ts); throws, listing the names, unless exactly
 * one matches.
 */
export function findCase(fragment: string): EndToEndCase {
  const all = [...endToEndCases(), ...probeCases()];
  const found = fragment ? all.filter((c) => c.name.toLowerCase().includes(fragment.toLowerCase())) : [];
  if (found.length !== 1) throw new Error(`the case must match exactly one case; '${fragment}' matches ${found.length}: ${all.map((c) => c.name).join(' | ')}`);
  return found[0];
}

export function endToEndCases(): EndToEndCase[] {
  const m = 1024;
  const conv = { n: 8, c: 1, o: 32, h: 224, w: 224, k: 3 };
  const convOut = (conv.h - conv.k + 1) * (conv.w - conv.k + 1);
  return [
    seedTrainCase(BATCH, SIZE),
    {
      name: 'seed CNN inference (probabilities), b32 64x64',
      images: BATCH,
      peer: { key: 'seed-infer', params: { batch: BATCH, size: SIZE, classes: CLASSES.length } },
      setup(engine) {
        const model = new DefectClassifier({ task: 'multiclass', classes: CLASSES, inputSize: SIZE }, engine);
        model.eval();
        const { pixels } = seedBatch();
        const x = engine.keep(model.inputTensor(pixels, BATCH));
        return {
          async step() {
            const p: Tensor = noGrad(() => engine.tidy(() => model.probabilities(x)));
            await p.toArray();
            p.dispose();
          },
          dispose() {
            model.dispose();
            x.dispose();
          },
        };
      },
    },
    seedTrainCase(BATCH, 224),
    // The seed's dense GAN: G Linear(100,128) ReLU Linear(128,784) Sigmoid; D Linear(784,128) ReLU Linear(128,1).
    ganCase('seed dense GAN iteration (D + G step, Adam), b128 28x28', { arch: 'dense', imageSize: 28, classes: ['x'] }, 128, {
      key: 'gan',
      params: { arch: 'dense', batch: 128, size: 28, latent: 100, hidden: 128 },
    }),
    ganCase('DCGAN iteration (D + G step, BatchNorm, Adam), ngf=ndf=32, b64 64x64', { arch: 'dcgan', imageSize: 64, classes: ['x'], ngf: 32, ndf: 32 }, 64, {
      key: 'gan',
      params: { arch: 'dcgan', batch: 64, size: 64, latent: 100, ngf: 32, ndf: 32 },
    }),
    {
      // The headline GEMM through the public API: y = x wᵀ (F.linear, no bias), read back.
      name: `matmul ${m}^3 via F.linear, read back`,
      flops: 2 * m * m * m,
      peer: { key: 'linear-readback', params: { m, n: m, k: m } },
      setup(engine) {
        const x = engine.keep(engine.tensor(caseData(m * m, 1), [m, m]));
        const w = engine.keep(engine.tensor(caseData(m * m, 2), [m, m]));
        return {
          async step() {
            const y = noGrad(() => F.linear(x, w));
            await y.toArray();
            y.dispose();
          },
          dispose() {
            x.dispose();
            w.dispose();
          },
        };
      },
    },
    {
      name: `conv2d b${conv.n} ${conv.c}x${conv.h}x${conv.w} -> ${conv.o} 3x3 + bias via F.conv2d, read back`,
      images: conv.n,
      flops: 2 * conv.n * conv.o * convOut * conv.c * conv.k * conv.k,
      peer: { key: 'conv-readback', params: conv },
      setup(engine) {
        const x = engine.keep(engine.tensor(caseData(conv.n * conv.c * conv.h * conv.w, 1, 0, 1), [conv.n, conv.c, conv.h, conv.w]));
        const w = engine.keep(engine.tensor(caseData(conv.o * conv.c * conv.k * conv.k, 2), [conv.o, conv.c, conv.k, conv.k]));
        const b = engine.keep(engine.tensor(caseData(conv.o, 3), [conv.o]));
        return {
          async step() {
            const y = noGrad(() => F.conv2d(x, w, b));
            await y.toArray();
            y.dispose();
          },
          dispose() {
            x.dispose();
            w.dispose();
            b.dispose();
          },
        };
      },
    },
  ];
}
