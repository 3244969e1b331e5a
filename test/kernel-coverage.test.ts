// Every registered op has tests: the list below names, for each op of the registry, the test file that
// checks it against its CPU reference (over `kernels.variants(op)`, which sees every registration
// through test/setup-kernels.ts). A new op without an entry here fails loudly, as does an entry for an
// op that no longer exists. When you add an op, add its tests and its line here.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { kernels } from '../src/kernels/registry.js';

const TESTED_OPS: Record<string, string> = {
  'activation.backward': 'test/activation.test.ts',
  'activation.forward': 'test/activation.test.ts',
  'batchNorm2d.backward': 'test/batchnorm2d.test.ts',
  'batchNorm2d.evalBackward': 'test/batchnorm2d.test.ts',
  'batchNorm2d.evalForward': 'test/batchnorm2d.test.ts',
  'batchNorm2d.trainForward': 'test/batchnorm2d.test.ts',
  'bce.backward': 'test/loss.test.ts',
  'bce.forward': 'test/loss.test.ts',
  'bceWithLogits.backward': 'test/loss.test.ts',
  'bceWithLogits.forward': 'test/loss.test.ts',
  'bias.backward': 'test/conv2d.test.ts',
  'conv2d.backwardInput': 'test/conv2d.test.ts',
  'conv2d.backwardWeight': 'test/conv2d.test.ts',
  'conv2d.forward': 'test/conv2d.test.ts',
  'convTranspose2d.backwardInput': 'test/conv-transpose2d.test.ts',
  'convTranspose2d.backwardWeight': 'test/conv-transpose2d.test.ts',
  'convTranspose2d.forward': 'test/conv-transpose2d.test.ts',
  'crossEntropy.backward': 'test/loss.test.ts',
  'crossEntropy.forward': 'test/loss.test.ts',
  'diffAugment.color': 'test/diffaugment.test.ts',
  'diffAugment.colorBackward': 'test/diffaugment.test.ts',
  'diffAugment.cutout': 'test/diffaugment.test.ts',
  'diffAugment.cutoutBackward': 'test/diffaugment.test.ts',
  'diffAugment.translate': 'test/diffaugment.test.ts',
  'diffAugment.translateBackward': 'test/diffaugment.test.ts',
  'dropout.backward': 'test/dropout.test.ts',
  'dropout.forward': 'test/dropout.test.ts',
  'elementwise.binary': 'test/elementwise.test.ts',
  'elementwise.scale': 'test/elementwise.test.ts',
  'elementwise.scaleByScalar': 'test/elementwise.test.ts',
  'linear.backwardInput': 'test/dense.test.ts',
  'linear.backwardWeight': 'test/dense.test.ts',
  'linear.forward': 'test/dense.test.ts',
  matmul: 'test/matmul.test.ts',
  'nearest.squaredDistance': 'test/nearest.test.ts',
  'maxPool2d.backward': 'test/maxpool2d.test.ts',
  'maxPool2d.forward': 'test/maxpool2d.test.ts',
  'optim.adam': 'test/optim.test.ts',
  'optim.adamMulti': 'test/optim.test.ts',
  'optim.sgd': 'test/optim.test.ts',
  'random.normal': 'test/random.test.ts',
  'random.uniform': 'test/random.test.ts',
  'reduce.mean': 'test/reduce.test.ts',
  'reduce.sum': 'test/reduce.test.ts',
  'reduce.sumToShape': 'test/reduce.test.ts',
  'softmax.backward': 'test/softmax.test.ts',
  'softmax.forward': 'test/softmax.test.ts',
  'spectralNorm.backward': 'test/spectral-norm-kernel.test.ts',
  'spectralNorm.forward': 'test/spectral-norm-kernel.test.ts',
  'upsampleNearest2d.backward': 'test/upsample.test.ts',
  'upsampleNearest2d.forward': 'test/upsample.test.ts',
};

describe('kernel test coverage', () => {
  it('every registered op (the whole kernel index, via test/setup-kernels.ts) has a test file', () => {
    expect(Object.keys(TESTED_OPS).sort()).toEqual(kernels.opNames());
  });

  // A test file names the op by its string ('conv2d.forward') or by its typed descriptor
  // (conv2dForwardOp: the op name in camel case plus 'Op', as every kernel family exports it).
  const descriptorName = (op: string) => op.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase()) + 'Op';
  it.each(Object.entries(TESTED_OPS))('%s is named in %s', (op, file) => {
    expect(existsSync(file), `${file} exists`).toBe(true);
    const text = readFileSync(file, 'utf8');
    expect(text.includes(op) || text.includes(descriptorName(op)), `${file} names ${op} or ${descriptorName(op)}`).toBe(true);
  });
});
