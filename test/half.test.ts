// Half-precision conversions (src/nn/half.ts) and F16 tensors in safetensors (src/nn/serialize.ts).
// The reference is independent of the bit manipulation under test: the list of every finite half value,
// decoded from its fields in float64, and a nearest-value search over it with ties to the even pattern.
// Exact comparisons: both sides are exact binary values.
import { describe, expect, it } from 'vitest';
import { floatToHalf, fromHalfBits, halfToFloat, roundToHalf, toHalfBits } from '../src/nn/half.js';
import { decodeSafetensors, encodeSafetensors } from '../src/nn/serialize.js';
import { Rng } from '../src/util/rng.js';

/** The value of half pattern h from its sign, exponent and fraction fields (float64). */
function decodeFields(h: number): number {
  const sign = h >> 15 ? -1 : 1;
  const exponent = (h >> 10) & 31;
  const fraction = h & 1023;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return exponent === 0 ? sign * fraction * 2 ** -24 : sign * (1024 + fraction) * 2 ** (exponent - 25);
}

// Non-negative finite halves in increasing order: patterns 0 .. 0x7bff are ordered by value.
const POSITIVE = Array.from({ length: 0x7c00 }, (_, h) => decodeFields(h));
const MAX_HALF = 65504;

/** Pattern of the half nearest to x (ties: the even pattern); past MAX_HALF + half an ulp (32): infinity. */
function nearestHalf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= MAX_HALF + 16) return sign | 0x7c00; // 65520 and above round to infinity (65520 is a tie with 65536, odd 0x7bff loses)
  let lo = 0;
  let hi = POSITIVE.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (POSITIVE[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - POSITIVE[lo];
  const dHi = POSITIVE[hi] - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}

describe('half precision', () => {
  it('decodes every pattern as its fields say, and encodes every half value back to its own pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = decodeFields(h);
      if (Number.isNaN(v)) {
        expect(halfToFloat(h)).toBeNaN();
        expect(halfToFloat(floatToHalf(NaN))).toBeNaN();
        continue;
      }
      expect(halfToFloat(h)).toBe(v);
      expect(floatToHalf(v)).toBe(h);
    }
  });

  it('rounds floats to the nearest half, ties to even, across normal, subnormal, overflow and tiny magnitudes', () => {
    const r = new Rng(7);
    const xs: number[] = [];
    for (let i = 0; i < 20000; i++) xs.push(Math.fround((r.uniform(0, 1) < 0.5 ? -1 : 1) * 2 ** r.uniform(-28, 17)));
    // Exact midpoints between neighbours (ties), and values a float32 ulp either side of them.
    for (let h = 0; h < 0x7bff; h += 37) {
      const mid = (POSITIVE[h] + POSITIVE[h + 1]) / 2;
      const m32 = Math.fround(mid);
      if (m32 !== mid) continue; // not a float32: not a tie a float32 input can hit
      const up = new Float32Array([m32]);
      const bits = new Uint32Array(up.buffer);
      bits[0] += 1;
      const above = up[0];
      bits[0] -= 2;
      const below = up[0];
      xs.push(m32, -m32, above, below);
    }
    xs.push(65504, 65519, 65520, 70000, 2 ** -24, 2 ** -25, Math.fround(2 ** -25 * 1.0001), 2 ** -26, 0, -0, Infinity, -Infinity);
    for (const x of xs) expect(floatToHalf(x), `x = ${x}`).toBe(nearestHalf(x));
  });

  it('converts arrays both ways; rounding is idempotent and stays within half an ulp (2^-11 relative for normals)', () => {
    const r = new Rng(3);
    const v = Float32Array.from({ length: 1000 }, () => r.uniform(-4, 4));
    const rounded = roundToHalf(v);
    expect(Array.from(roundToHalf(rounded))).toEqual(Array.from(rounded));
    expect(Array.from(fromHalfBits(toHalfBits(v)))).toEqual(Array.from(rounded));
    v.forEach((x, i) => expect(Math.abs(rounded[i] - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11 + 2 ** -25));
    expect(rounded.some((x, i) => x !== v[i])).toBe(true); // the rounding does something (not a copy)
  });

  it('writes F16 tensors to safetensors (2 bytes a value) and reads them back as float32', () => {
    const values = Float32Array.from([1, -2.5, 0.1, 65504, 6e-8, -0]);
    const bits = toHalfBits(values);
    const chunks = encodeSafetensors({ w: { shape: [2, 3], dtype: 'F16', data: bits } });
    const bytes = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
    let o = 0;
    for (const c of chunks) (bytes.set(c, o), (o += c.byteLength));
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))).w).toMatchObject({ dtype: 'F16', shape: [2, 3], data_offsets: [0, 12] });
    const { tensors } = decodeSafetensors(bytes);
    expect(tensors.w.dtype).toBe('F32');
    expect(Array.from(tensors.w.data as Float32Array)).toEqual(Array.from(roundToHalf(values)));
  });
});
