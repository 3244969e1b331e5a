// Small dense float64 linear algebra for the quality metrics: covariance and the symmetric
// eigendecomposition that the Fréchet distance needs for its matrix square root. Matrices are
// row-major Float64Arrays. The sizes here are the classifier's feature width (128), so a cyclic
// Jacobi method is fast enough, and it is the most accurate eigensolver for symmetric matrices
// (small eigenvalues keep their relative accuracy), which matters for rank-deficient covariances.
import { ShapeError } from '../gpu/errors.js';

/** Eigenvalues and orthonormal eigenvectors of a symmetric matrix: A = V diag(values) V^T. */
export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** n x n row-major; column k is the eigenvector of values[k]. */
  vectors: Float64Array;
}

/**
 * Eigendecomposition of the symmetric n x n matrix `a` (row-major; only its symmetric part is used)
 * by the cyclic Jacobi method. Sweeps until the off-diagonal mass is below 1e-30 of the total, or
 * throws after `maxSweeps` (never reached for symmetric input: Jacobi converges quadratically).
 */
export function symmetricEigen(a: ArrayLike<number>, n: number, maxSweeps = 100): SymmetricEigen {
  if (!Number.isInteger(n) || n < 1) throw new ShapeError(`symmetricEigen: n must be a positive integer, got ${n}`);
  if (a.length !== n * n) throw new ShapeError(`symmetricEigen: expected ${n}x${n} = ${n * n} values, got ${a.length}`);
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = 0.5 * (a[i * n + j] + a[j * n + i]);
      if (!Number.isFinite(v)) throw new RangeError(`symmetricEigen: non-finite entry at (${i}, ${j})`);
      m[i * n + j] = v;
    }
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;

  let total = 0;
  for (let i = 0; i < n * n; i++) total += m[i] * m[i];
  for (let sweep = 0; ; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] * m[p * n + q];
    if (off <= 1e-30 * total || off === 0) break;
    if (sweep >= maxSweeps) throw new Error(`symmetricEigen: no convergence after ${maxSweeps} sweeps (off-diagonal ${off} of ${total})`);
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        // Past the first sweeps, an entry below rounding of both diagonal entries is zero (Numerical Recipes' test).
        const g = 100 * Math.abs(apq);
        if (sweep > 3 && Math.abs(m[p * n + p]) + g === Math.abs(m[p * n + p]) && Math.abs(m[q * n + q]) + g === Math.abs(m[q * n + q])) {
          m[p * n + q] = 0;
          m[q * n + p] = 0;
          continue;
        }
        // The rotation J (c at pp and qq, s at pq, -s at qp) with (J^T A J)_pq = 0 (Golub & Van Loan, sym.schur2).
        const tau = (m[q * n + q] - m[p * n + p]) / (2 * apq);
        const t = tau >= 0 ? 1 / (tau + Math.sqrt(1 + tau * tau)) : -1 / (-tau + Math.sqrt(1 + tau * tau));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const kp = m[k * n + p];
          const kq = m[k * n + q];
          m[k * n + p] = c * kp - s * kq;
          m[k * n + q] = s * kp + c * kq;
        }
        for (let k = 0; k < n; k++) {
          const pk = m[p * n + k];
          const qk = m[q * n + k];
          m[p * n + k] = c * pk - s * qk;
          m[q * n + k] = s * pk + c * qk;
        }
        m[p * n + q] = 0;
        m[q * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const kp = v[k * n + p];
          const kq = v[k * n + q];
          v[k * n + p] = c * kp - s * kq;
          v[k * n + q] = s * kp + c * kq;
        }
      }
    }
  }

  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => m[i * n + i] - m[j * n + j]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = m[src * n + src];
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors };
}

/**
 * The principal square root of a symmetric positive semi-definite matrix, V diag(sqrt(max(l, 0))) V^T.
 * Eigenvalues that rounding made slightly negative are clipped to zero.
 */
export function sqrtPsd(a: ArrayLike<number>, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, n);
  const r = new Float64Array(n);
  for (let k = 0; k < n; k++) r[k] = Math.sqrt(Math.max(values[k], 0));
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += vectors[i * n + k] * r[k] * vectors[j * n + k];
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/** C = A B for n x n row-major matrices. */
export function matmulSquare(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
    }
  }
  return c;
}
