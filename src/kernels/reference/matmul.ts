// CPU reference for (batched) matrix multiply with optional transposes, bias and activation; float64.
import { activationRef, type ActivationName } from './activation.js';

export interface MatmulRefOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: ArrayLike<number> | null;
  activation?: ActivationName;
  slope?: number;
}

/**
 * a: [M,K] / [B,M,K] (transA: [K,M] / [B,K,M]); b: [K,N] / [B,K,N] (transB: [N,K] / [B,N,K]).
 * A 2-D operand is shared by every batch entry of a 3-D one. Returns the data and shape of the result.
 */
export function matmulRef(
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
  opts: MatmulRefOptions = {},
): { data: Float64Array; shape: number[] } {
  const aBatch = aShape.length === 3 ? aShape[0] : 0;
  const bBatch = bShape.length === 3 ? bShape[0] : 0;
  const batch = Math.max(aBatch, bBatch, 1);
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const M = opts.transA ? ac : ar;
  const K = opts.transA ? ar : ac;
  const N = opts.transB ? br : bc;
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = aBatch ? z * ar * ac : 0;
    const bo = bBatch ? z * br * bc : 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = opts.bias ? opts.bias[n] : 0;
        for (let k = 0; k < K; k++) {
          const av = opts.transA ? a[ao + k * ac + m] : a[ao + m * ac + k];
          const bv = opts.transB ? b[bo + n * bc + k] : b[bo + k * bc + n];
          s += av * bv;
        }
        out[(z * M + m) * N + n] = s;
      }
    }
  }
  const data = opts.activation ? activationRef(out, opts.activation, opts.slope ?? 0.01) : out;
  return { data, shape: aBatch || bBatch ? [batch, M, N] : [M, N] };
}
