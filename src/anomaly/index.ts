// Anomaly detection trained on good images only (f-AnoGAN on patches): the public API.
export { AnomalyDetector, type AnomalyDetectorOptions, type AnomalyMap, type AnomalyResult, type ScoreOptions } from './detector.js';
export { trainAnomalyDetector, type AnomalyTrainOptions, type AnomalyTrainResult, type AnomalyEpochRecord, type AnomalyPhase } from './train.js';
export { evaluateAnomalyDetector, formatAnomalyReport, type AnomalyEvalOptions, type AnomalyEvalResult, type FolderReport, type ImageScore } from './evaluate.js';
export { calibrate, recalibrateModelDir, DEFAULT_SCORING_CANDIDATES, type CalibrationResult, type ScoringSettings, type CandidateResult } from './calibrate.js';
export { loadAnomalyDir, readAnomalyMetadata, saveAnomalyDir, ANOMALY_FORMAT, type AnomalyMetadata, type AnomalyThreshold } from './model-dir.js';
export { resolveAnomalyConfig, DEFAULT_ANOMALY_CONFIG, type AnomalyConfig, type ResolvedAnomalyConfig } from './config.js';
export { Encoder } from './encoder.js';
export { PixelAuroc, thresholdAtFalseAlarmRate, flaggedShare } from './metrics.js';
export { writeHeatmapPng, overlayRgb } from './heatmap.js';
export { cropPatch, pasteRectangle, pasteScar } from './cutpaste.js';
export type { Scoring } from './scorer.js';
