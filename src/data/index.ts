// The CPU data pipeline of the CNN: decoding, datasets, splits, augmentation, batches, synthetic data.
export * from './images.js';
export * from './dataset.js';
export * from './split.js';
export * from './augment.js';
export * from './cache.js';
export * from './batch.js';
export * from './synthetic.js';
export * from './prepare.js';
