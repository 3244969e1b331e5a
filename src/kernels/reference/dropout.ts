// CPU reference for the counter-based RNG (Philox-4x32-10) and inverted dropout, in float64.
//
// Written from the Random123 description (Salmon et al., SC'11), independently of the WGSL: the
// 32x32 -> 64-bit products use BigInt here, 16-bit halves on the GPU. Checked against the Random123
// known-answer vectors in test/dropout.test.ts.

const M0 = 0xd2511f53n;
const M1 = 0xcd9e8d57n;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const MASK32 = 0xffffffffn;

/** Philox-4x32 with `rounds` rounds (10 is the standard): 4 u32 outputs for a 4-word counter and 2-word key. */
export function philox4x32(counter: readonly number[], key: readonly number[], rounds = 10): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((v) => v >>> 0);
  let k0 = key[0] >>> 0;
  let k1 = key[1] >>> 0;
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const p0 = M0 * BigInt(c0);
    const p1 = M1 * BigInt(c2);
    const hi0 = Number(p0 >> 32n);
    const lo0 = Number(p0 & MASK32);
    const hi1 = Number(p1 >> 32n);
    const lo1 = Number(p1 & MASK32);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** Domain words of the counter (second word), one per use, so streams with one seed are unrelated. */
export const PHILOX_DOMAIN = { dropout: 0x64726f70, uniform: 0x756e6966, normal: 0x6e6f726d } as const;

/** Splits a seed (integer, 0 <= seed < 2^53) into the two key words (low, high). */
export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`wgsl-nn: seed ${seed} is not an integer in [0, 2^53)`);
  return [seed % 2 ** 32 >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
}

/** The n random u32 words of a stream: element i is word i % 4 of philox4x32((floor(i/4), domain, 0, 0), seedKey(seed)). */
export function philoxWords(n: number, seed: number, domain: number): Uint32Array {
  const key = seedKey(seed);
  const out = new Uint32Array(n);
  for (let b = 0; b * 4 < n; b++) {
    const r = philox4x32([b, domain, 0, 0], key);
    for (let k = 0; k < 4 && b * 4 + k < n; k++) out[b * 4 + k] = r[k];
  }
  return out;
}

/** The drop threshold on the 32-bit word: an element is kept when its word is >= round(p * 2^32). */
export function dropThreshold(p: number): number {
  return Math.min(Math.round(p * 2 ** 32), 2 ** 32 - 1);
}

/** The 0/1 keep mask of dropout with drop probability p (each element kept with probability 1 - p). */
export function dropoutMaskRef(n: number, p: number, seed: number): Float64Array {
  const words = philoxWords(n, seed, PHILOX_DOMAIN.dropout);
  const thr = dropThreshold(p);
  const mask = new Float64Array(n);
  for (let i = 0; i < n; i++) mask[i] = words[i] >= thr ? 1 : 0;
  return mask;
}

/** y = x * mask / (1 - p) with a given mask. */
export function dropoutRef(x: ArrayLike<number>, mask: ArrayLike<number>, p: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = mask[i] ? x[i] / (1 - p) : 0;
  return y;
}

/** dx = dy * mask / (1 - p): dropout is linear in x, so its backward is the same masked scaling. */
export function dropoutBackwardRef(dy: ArrayLike<number>, mask: ArrayLike<number>, p: number): Float64Array {
  const dx = new Float64Array(dy.length);
  for (let i = 0; i < dy.length; i++) dx[i] = mask[i] ? dy[i] / (1 - p) : 0;
  return dx;
}

/** Uniform values in [lo, hi) from the top 24 bits of each word. */
export function randomUniformRef(n: number, seed: number, lo = 0, hi = 1): Float64Array {
  const words = philoxWords(n, seed, PHILOX_DOMAIN.uniform);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * ((words[i] >>> 8) / 2 ** 24);
  return out;
}

/**
 * Normal values by Box-Muller: words (2j, 2j+1) give u1 = (top24 + 1) / 2^24 in (0, 1] and an angle
 * theta = (2 u2 - 1) pi in [-pi, pi); element 2j is r cos(theta), 2j+1 is r sin(theta), r = sqrt(-2 ln u1).
 * For odd n the last element is the cosine half of its pair.
 */
export function randomNormalRef(n: number, seed: number, mean = 0, std = 1): Float64Array {
  const words = philoxWords(n + (n % 2), seed, PHILOX_DOMAIN.normal);
  const out = new Float64Array(n);
  for (let j = 0; 2 * j < n; j++) {
    const u1 = ((words[2 * j] >>> 8) + 1) / 2 ** 24;
    const u2 = (words[2 * j + 1] >>> 8) / 2 ** 24;
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = (2 * u2 - 1) * Math.PI;
    out[2 * j] = mean + std * r * Math.cos(theta);
    if (2 * j + 1 < n) out[2 * j + 1] = mean + std * r * Math.sin(theta);
  }
  return out;
}
