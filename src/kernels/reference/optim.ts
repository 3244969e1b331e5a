// CPU references for the optimizer updates, in float64, following the update rules of PyTorch's
// torch.optim.Adam and torch.optim.SGD docs. They return new arrays (the GPU kernels update in place).

export interface AdamRefState {
  param: Float64Array;
  expAvg: Float64Array;
  expAvgSq: Float64Array;
}

/** One Adam step (t >= 1): returns the new parameter and moment estimates. */
export function adamStepRef(
  param: ArrayLike<number>,
  grad: ArrayLike<number>,
  expAvg: ArrayLike<number>,
  expAvgSq: ArrayLike<number>,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number },
): AdamRefState {
  const n = param.length;
  const out: AdamRefState = { param: new Float64Array(n), expAvg: new Float64Array(n), expAvgSq: new Float64Array(n) };
  const biasCorrection1 = 1 - Math.pow(o.beta1, o.step);
  const biasCorrection2 = 1 - Math.pow(o.beta2, o.step);
  for (let i = 0; i < n; i++) {
    const g = grad[i] + o.weightDecay * param[i];
    const m = o.beta1 * expAvg[i] + (1 - o.beta1) * g;
    const v = o.beta2 * expAvgSq[i] + (1 - o.beta2) * g * g;
    const mHat = m / biasCorrection1;
    const vHatSqrt = Math.sqrt(v) / Math.sqrt(biasCorrection2);
    out.expAvg[i] = m;
    out.expAvgSq[i] = v;
    out.param[i] = param[i] - o.lr * mHat / (vHatSqrt + o.eps);
  }
  return out;
}

/** One SGD step: returns the new parameter and momentum buffer (null without momentum). */
export function sgdStepRef(
  param: ArrayLike<number>,
  grad: ArrayLike<number>,
  velocity: ArrayLike<number> | null,
  o: { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean; firstStep: boolean },
): { param: Float64Array; velocity: Float64Array | null } {
  const n = param.length;
  const newParam = new Float64Array(n);
  const newVel = o.momentum !== 0 ? new Float64Array(n) : null;
  for (let i = 0; i < n; i++) {
    let d = grad[i] + o.weightDecay * param[i];
    if (newVel) {
      const b = o.firstStep ? d : o.momentum * velocity![i] + (1 - o.dampening) * d;
      newVel[i] = b;
      d = o.nesterov ? d + o.momentum * b : b;
    }
    newParam[i] = param[i] - o.lr * d;
  }
  return { param: newParam, velocity: newVel };
}
