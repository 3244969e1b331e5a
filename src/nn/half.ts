// IEEE 754 binary16 ("half", safetensors' F16) conversions on the host. Used where a large buffer is
// stored at half precision to halve its file (a feature memory's bank) and for reading F16 tensors.
//
// float -> half rounds to nearest, ties to even, as numpy's float16 and torch's .half() do: the float32
// bit pattern is shifted down by 13 bits (23 - 10 fraction bits) with the dropped bits rounding the result;
// a carry out of the fraction moves into the exponent, which is what the next representable value is.
// Magnitudes past the largest half (65504, plus half an ulp) become infinity; below 2^-14 the result is
// subnormal (fixed step 2^-24), and below 2^-25 it rounds to a signed zero.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The half nearest to x (ties to even), as its 16-bit pattern. */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const frac = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (frac ? 0x200 : 0); // inf, or a quiet NaN
  const e = exp - 127 + 15; // the half's biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // too large even before rounding
  if (e <= 0) {
    // Subnormal half (or zero): the value in units of 2^-24 is (1.frac) * 2^(exp - 127 + 24).
    if (e < -10) return sign; // below half of the smallest subnormal: +-0
    const mant = frac | 0x800000; // the implicit leading 1
    const shift = 14 - e; // 24 - 10 + (1 - e): bits dropped
    const kept = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const up = rest > halfway || (rest === halfway && (kept & 1) === 1);
    return sign | (kept + (up ? 1 : 0)); // a carry into bit 10 is the smallest normal: correct
  }
  const kept = (e << 10) | (frac >>> 13);
  const rest = frac & 0x1fff;
  const up = rest > 0x1000 || (rest === 0x1000 && (kept & 1) === 1);
  return sign | (kept + (up ? 1 : 0)); // a carry into the exponent may reach 0x7c00: infinity, correct
}

/** The value of a 16-bit half pattern. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Half patterns of every value (ties to even). */
export function toHalfBits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]);
  return out;
}

/** Float32 values of half patterns. */
export function fromHalfBits(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]);
  return out;
}

/** Each value rounded to the nearest half (so that computing with it gives what a half-precision copy gives). */
export function roundToHalf(values: Float32Array): Float32Array {
  return fromHalfBits(toHalfBits(values));
}
