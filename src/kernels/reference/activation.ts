// CPU reference for activations, in float64.
export type ActivationName = 'none' | 'relu' | 'leakyRelu' | 'sigmoid' | 'tanh';

export function activationRef(x: ArrayLike<number>, act: ActivationName, slope = 0.01): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    switch (act) {
      case 'relu': y[i] = v > 0 ? v : 0; break;
      case 'leakyRelu': y[i] = v > 0 ? v : slope * v; break;
      case 'sigmoid': y[i] = 1 / (1 + Math.exp(-v)); break;
      case 'tanh': y[i] = Math.tanh(v); break;
      default: y[i] = v;
    }
  }
  return y;
}

/** dx = dy * act'(x), differentiated from x directly (independent of the GPU's output-based form). */
export function activationBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>, act: ActivationName, slope = 0.01): Float64Array {
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    let d = 1;
    switch (act) {
      case 'relu': d = v > 0 ? 1 : 0; break;
      case 'leakyRelu': d = v > 0 ? 1 : slope; break;
      case 'sigmoid': { const s = 1 / (1 + Math.exp(-v)); d = s * (1 - s); break; }
      case 'tanh': { const t = Math.tanh(v); d = 1 - t * t; break; }
    }
    dx[i] = dy[i] * d;
  }
  return dx;
}
