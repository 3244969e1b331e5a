// The benchmark cases: kernel cases (one op on one shape; every registered variant of the op is timed)
// and end-to-end cases (the seed CNN's training step and inference).
//
// Kernel cases come from the builders in src/kernels/autotune.ts (`opCases`), which autotune also
// uses. To add a case, add a line to `kernelCases()` (see bench/README.md).
import { DefectClassifier } from '../src/cnn/model.js';
import type { Engine } from '../src/gpu/engine.js';
import { opCases, caseData, type KernelCase } from '../src/kernels/autotune.js';
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
    ...tag('matmul 256^3', [opCases.matmul(256, 256, 256)], () => 'matmul256'),
    ...tag('matmul 512^3', [opCases.matmul(512, 512, 512)], () => 'matmul512'),
    // DCGAN discriminator block: a strided conv (kernel 4, stride 2, padding 1), 32x32 -> 16x16; batch 8
    // keeps its share of the suite's time small.
    ...tag('dcgan D conv 64->128 32->16 b8', opCases.conv2d(8, 64, 128, 32, 32, 4, 2, 1), convTf('convD')),
    // DCGAN generator block: 128 -> 64 channels, 8x8 -> 16x16, kernel 4, stride 2, padding 1.
    ...tag('dcgan convT 128->64 8->16 b32', opCases.convTranspose2d(32, 128, 64, 8, 8, 4, 2, 1), convTf('convT')),
    ...tag('maxpool 2x2 [32,32,62,62]', opCases.maxPool2d([32, 32, 62, 62], 2, 2)),
    ...tag('softmax [256,1000]', opCases.softmax(256, 1000)),
    ...tag('batchnorm train [32,32,32,32]', opCases.batchNorm2d([32, 32, 32, 32])),
    ...tag('add bias broadcast', [opCases.binary([32, 32, 62, 62], [1, 32, 1, 1], 'add')]),
    ...tag('adam 1M params', [opCases.adam(1 << 20)]),
  ];
}

/** An end-to-end case: `setup` builds the model; `step()` runs once and resolves when the GPU is done. */
export interface EndToEndCase {
  name: string;
  /** Images per step (for images/s). */
  images: number;
  tfjs: string;
  setup(engine: Engine): { step(): Promise<void>; dispose(): void };
}

const BATCH = 32;
const SIZE = 64;
const CLASSES = ['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot'];

/** The seed CNN's batch: pixels in [0,1) and integer labels (deterministic). */
export function seedBatch(): { pixels: Float32Array; labels: Int32Array } {
  const pixels = caseData(BATCH * SIZE * SIZE, 11, 0, 1);
  const labels = Int32Array.from({ length: BATCH }, (_, i) => i % CLASSES.length);
  return { pixels, labels };
}

export const SEED_CNN = { batch: BATCH, size: SIZE, classes: CLASSES.length, channels: [32, 64, 128] as const, hidden: 128 };

export function endToEndCases(): EndToEndCase[] {
  return [
    {
      name: 'seed CNN training step (fwd + bwd + Adam), b32 64x64',
      images: BATCH,
      tfjs: 'train',
      setup(engine) {
        const model = new DefectClassifier({ task: 'multiclass', classes: CLASSES, inputSize: SIZE }, engine);
        model.train();
        const opt = new Adam(model.parameters(), { lr: 1e-3 });
        const { pixels, labels } = seedBatch();
        const x = engine.keep(model.inputTensor(pixels, BATCH));
        const y = engine.keep(engine.tensor(labels, [BATCH]));
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
            await loss.item();
            loss.dispose();
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
    },
    {
      name: 'seed CNN inference (probabilities), b32 64x64',
      images: BATCH,
      tfjs: 'infer',
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
  ];
}
