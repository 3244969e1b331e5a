// wgsl-nn: public API.
export { Engine, f32, i32, formatBytes, type EngineOptions, type AdapterDescription, type DispatchSpec } from './gpu/engine.js';
export { DeviceTensor, type DType } from './gpu/device-tensor.js';
export * from './gpu/errors.js';
export type { MemoryStats } from './gpu/buffer-pool.js';
export { kernels, KernelRegistry } from './kernels/registry.js';
export * from './nn/index.js';
export { Inspector, type Inspection, type InspectorOptions } from './cnn/inspector.js';
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
export { autotune, loadTuned } from './kernels/autotune.js';
