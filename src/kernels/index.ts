// Importing this module registers every kernel family with the registry (src/kernels/registry.ts).
import './activation.js';
import './matmul.js';
import './dense.js';
import './bias-grad.js';
import './conv2d.js';
import './conv-transpose2d.js';
import './maxpool2d.js';
import './softmax.js';
import './loss.js';
import './elementwise.js';
import './reduce.js';
import './batchnorm2d.js';
import './dropout.js';
import './optim.js';
import './random.js';
import './diffaugment.js';
import './nearest.js';
import './spectral-norm.js';
import './upsample.js';

import { applyKernelEnv } from './registry.js';

applyKernelEnv();

export { kernels, KernelRegistry, OpDescriptor, applyKernelEnv, defineOp } from './registry.js';
