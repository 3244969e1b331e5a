// CPU reference for 2-D batch normalisation (NCHW), in float64 with plain loops.
// Statistics per channel over (N, H, W): mean first, then the mean of squared deviations (two passes).

export interface BatchNormRefShape {
  n: number;
  c: number;
  h: number;
  w: number;
}

function channelStats(x: ArrayLike<number>, s: BatchNormRefShape): { mean: Float64Array; varBiased: Float64Array; m: number } {
  const hw = s.h * s.w;
  const m = s.n * hw;
  const mean = new Float64Array(s.c);
  const varBiased = new Float64Array(s.c);
  for (let c = 0; c < s.c; c++) {
    let sum = 0;
    for (let n = 0; n < s.n; n++) for (let i = 0; i < hw; i++) sum += x[(n * s.c + c) * hw + i];
    const mu = sum / m;
    let sq = 0;
    for (let n = 0; n < s.n; n++)
      for (let i = 0; i < hw; i++) {
        const d = x[(n * s.c + c) * hw + i] - mu;
        sq += d * d;
      }
    mean[c] = mu;
    varBiased[c] = sq / m;
  }
  return { mean, varBiased, m };
}

/** y[n,c,i] = gamma[c] * (x - mean[c]) / sqrt(var[c] + eps) + beta[c]. */
function normalizeWith(
  x: ArrayLike<number>,
  s: BatchNormRefShape,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  eps: number,
): Float64Array {
  const hw = s.h * s.w;
  const y = new Float64Array(s.n * s.c * hw);
  for (let n = 0; n < s.n; n++)
    for (let c = 0; c < s.c; c++) {
      const denom = Math.sqrt(variance[c] + eps);
      for (let i = 0; i < hw; i++) {
        const k = (n * s.c + c) * hw + i;
        y[k] = (gamma[c] * (x[k] - mean[c])) / denom + beta[c];
      }
    }
  return y;
}

/** Training-mode forward: y, batch mean, biased batch var, and the running statistics after one update. */
export function batchNorm2dTrainRef(
  x: ArrayLike<number>,
  s: BatchNormRefShape,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  runningMean: ArrayLike<number>,
  runningVar: ArrayLike<number>,
  momentum: number,
  eps: number,
): { y: Float64Array; mean: Float64Array; var: Float64Array; runningMean: Float64Array; runningVar: Float64Array } {
  const { mean, varBiased, m } = channelStats(x, s);
  const y = normalizeWith(x, s, gamma, beta, mean, varBiased, eps);
  const rm = new Float64Array(s.c);
  const rv = new Float64Array(s.c);
  for (let c = 0; c < s.c; c++) {
    const unbiased = m > 1 ? (varBiased[c] * m) / (m - 1) : varBiased[c];
    rm[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
    rv[c] = (1 - momentum) * runningVar[c] + momentum * unbiased;
  }
  return { y, mean, var: varBiased, runningMean: rm, runningVar: rv };
}

/** Eval-mode forward with given running statistics. */
export function batchNorm2dEvalRef(
  x: ArrayLike<number>,
  s: BatchNormRefShape,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  runningMean: ArrayLike<number>,
  runningVar: ArrayLike<number>,
  eps: number,
): Float64Array {
  return normalizeWith(x, s, gamma, beta, runningMean, runningVar, eps);
}

/**
 * Training-mode backward of sum(dy * y) with y from batchNorm2dTrainRef (the statistics depend on x).
 * With xhat = (x - mean) / sqrt(var + eps):
 *   dbeta = sum dy, dgamma = sum dy xhat,
 *   dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy xhat))   (means over the channel's m elements)
 */
export function batchNorm2dBackwardRef(
  x: ArrayLike<number>,
  s: BatchNormRefShape,
  dy: ArrayLike<number>,
  gamma: ArrayLike<number>,
  eps: number,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const hw = s.h * s.w;
  const { mean, varBiased, m } = channelStats(x, s);
  const dx = new Float64Array(s.n * s.c * hw);
  const dgamma = new Float64Array(s.c);
  const dbeta = new Float64Array(s.c);
  for (let c = 0; c < s.c; c++) {
    const rstd = 1 / Math.sqrt(varBiased[c] + eps);
    let sumDy = 0;
    let sumDyXhat = 0;
    for (let n = 0; n < s.n; n++)
      for (let i = 0; i < hw; i++) {
        const k = (n * s.c + c) * hw + i;
        sumDy += dy[k];
        sumDyXhat += dy[k] * (x[k] - mean[c]) * rstd;
      }
    dbeta[c] = sumDy;
    dgamma[c] = sumDyXhat;
    for (let n = 0; n < s.n; n++)
      for (let i = 0; i < hw; i++) {
        const k = (n * s.c + c) * hw + i;
        const xhat = (x[k] - mean[c]) * rstd;
        dx[k] = gamma[c] * rstd * (dy[k] - sumDy / m - (xhat * sumDyXhat) / m);
      }
  }
  return { dx, dgamma, dbeta };
}

/** Eval-mode backward: the running statistics are constants, so y is affine in x per channel. */
export function batchNorm2dEvalBackwardRef(
  x: ArrayLike<number>,
  s: BatchNormRefShape,
  dy: ArrayLike<number>,
  gamma: ArrayLike<number>,
  runningMean: ArrayLike<number>,
  runningVar: ArrayLike<number>,
  eps: number,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const hw = s.h * s.w;
  const dx = new Float64Array(s.n * s.c * hw);
  const dgamma = new Float64Array(s.c);
  const dbeta = new Float64Array(s.c);
  for (let n = 0; n < s.n; n++)
    for (let c = 0; c < s.c; c++) {
      const rstd = 1 / Math.sqrt(runningVar[c] + eps);
      for (let i = 0; i < hw; i++) {
        const k = (n * s.c + c) * hw + i;
        dx[k] = dy[k] * gamma[c] * rstd;
        dgamma[c] += dy[k] * (x[k] - runningMean[c]) * rstd;
        dbeta[c] += dy[k];
      }
    }
  return { dx, dgamma, dbeta };
}
