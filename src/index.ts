// wgsl-nn: public API.
export { Engine, f32, i32, formatBytes, type EngineOptions, type AdapterDescription, type DispatchSpec } from './gpu/engine.js';
export { DeviceTensor, type DType } from './gpu/device-tensor.js';
export * from './gpu/errors.js';
export type { MemoryStats } from './gpu/buffer-pool.js';
export { kernels, KernelRegistry, OpDescriptor, defineOp } from './kernels/registry.js';
export * from './nn/index.js';
export { Inspector, InspectionFailedError, type Inspection, type InspectorOptions, type InspectorStats } from './cnn/inspector.js';
export * from './anomaly/index.js';
export { BatchQueue, BatchQueueClosedError, type BatchQueueOptions, type BatchQueueStats } from './cnn/batch-queue.js';
export { startServer, type ServeOptions, type RunningServer, type ServerMetrics, type InspectResponse } from './serve/server.js';
export { DefectClassifier, type ModelConfig } from './cnn/model.js';
export { trainClassifier, TrainingDivergedError, type TrainOptions, type TrainResult } from './cnn/train.js';
export { evaluateModel, type EvaluationResult } from './cnn/evaluate.js';
export { loadModelDir, saveModelDir, readModelMetadata, ModelFormatError, type ModelMetadata } from './cnn/model-dir.js';
export { computeMetrics, type MetricsReport } from './eval/metrics.js';
export { historySeries, writeCurvesPng, writeConfusionPng, type CurveSeries, type CurvesOptions } from './eval/plots.js';
export { writeModelDir, readModelJson, readModelWeights } from './model-dir.js';
export {
  runTrainingLoop,
  epochSeed,
  type TrainingLoopOptions,
  type TrainingLoopResult,
  type StepOutput,
  type StepValues,
  type StepContext,
  type BatchProgress,
  type EpochSummary,
  type EpochOutcome,
  type LoopState,
  type CheckpointSettings,
} from './train/loop.js';
export { saveCheckpoint, loadCheckpoint, checkpointExists, CheckpointError, CheckpointMismatchError, CHECKPOINT_FORMAT, type CheckpointParts } from './train/checkpoint.js';
export { scheduledLr, applyLrSchedule, LR_SCHEDULES, type LrSchedule } from './train/schedule.js';
export { TrainingProgress, type ProgressField, type TrainingProgressOptions } from './train/progress.js';
export { ImageDecodeError, decodeImage } from './data/images.js';
export { DatasetError, ClassMismatchError, scanDataset } from './data/dataset.js';
export { generateSynthetic } from './data/synthetic.js';
// Measuring variants (autotune) lives in bench/tuner.ts (`npm run autotune`); the library applies the cache.
export { loadTuned, defaultCacheFile, type PerBucket } from './kernels/tuning-cache.js';
export {
  calibrateModelDir,
  chooseThreshold,
  parseOperatingPoint,
  ratesAt,
  OperatingPointError,
  DEFAULT_OPERATING_POINT,
  type OperatingPoint,
  type DecisionRates,
} from './cnn/calibration.js';
export { gradCam, upsampleCam, writeHeatmapPng, type Heatmap, type GradCamOptions } from './cnn/gradcam.js';
export { Generator, Discriminator, resolveGanConfig, type GanConfig, type GanArch } from './gan/models.js';
export { GanStep, type GanStepOptions } from './gan/step.js';
export { trainGan, type GanTrainOptions, type GanTrainResult, type GanEpochRecord } from './gan/train.js';
export { saveGanDir, loadGanDir, readGanMetadata, GAN_FORMAT, type GanMetadata } from './gan/model-dir.js';
export { GeneratorMixture, GeneratorClassSet, writeGanMixture, writeGanClassSet, loadGanSampler, readGanSamplerMeta, GAN_MIXTURE_FORMAT, GAN_CLASS_SET_FORMAT, type ImageGenerator, type GanSamplerMeta, type GanMixtureMetadata, type GanClassSetMetadata } from './gan/mixture.js';
export { generateImages, latentNoise, writeImageGrid, writeSampleFolders, type GenerateOptions, type SampleFilter, type SampleFolderOptions } from './gan/samples.js';
export { classifierFilter, type ClassifierFilterOptions } from './gan/classifier-filter.js';
export { scoreGan, formatGanScore, type GanScoreReport } from './gan/score.js';
export { frechetDistance, kernelInceptionDistance, realFloor, extractFeatures, extractFeaturesFromImages, type FeatureMatrix } from './gan/quality.js';
export { predictImages } from './gan/features.js';
