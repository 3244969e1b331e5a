// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; the Random123
// generator): a counter-based RNG. philox4x32(counter, key) is a pure function, so element i of a
// random tensor depends only on (seed, i) -- not on the dispatch shape, workgroup size or adapter.
// Everything here is u32 integer arithmetic, which is exact and wraps identically on every device.
//
// Used by dropout.wgsl and random.wgsl (imported with `//! import philox`). The CPU twin, written
// independently with BigInt products, is philox4x32 in src/kernels/reference/dropout.ts.
//
// Stream layout shared by all users: key = (seed low 32 bits, seed high 32 bits); counter =
// (i / 4, PHILOX_DOMAIN_*, 0, 0) gives 4 words for elements 4*(i/4) .. 4*(i/4)+3. The domain word keeps
// dropout masks and random fills drawn with the same seed uncorrelated.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u; // golden ratio
const PHILOX_W1: u32 = 0xBB67AE85u; // sqrt(3) - 1

const PHILOX_DOMAIN_DROPOUT: u32 = 0x64726f70u; // 'drop'
const PHILOX_DOMAIN_UNIFORM: u32 = 0x756e6966u; // 'unif'
const PHILOX_DOMAIN_NORMAL: u32 = 0x6e6f726du;  // 'norm'

// Full 64-bit product of two u32 as (hi, lo). WGSL has no 64-bit integers or mul-high, so the high
// word is assembled from 16-bit halves; every partial sum below fits in 32 bits.
fn philox_mulhilo(a: u32, b: u32) -> vec2u {
  let a_lo = a & 0xffffu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xffffu;
  let b_hi = b >> 16u;
  let ll = a_lo * b_lo;
  let lh = a_lo * b_hi;
  let hl = a_hi * b_lo;
  let hh = a_hi * b_hi;
  // Carry out of the low word: (ll >> 16) + low halves of the cross terms, each < 2^16.
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
  return vec2u(hi, a * b); // u32 multiplication wraps: the low word
}

fn philox_round(c: vec4u, k: vec2u) -> vec4u {
  let p0 = philox_mulhilo(PHILOX_M0, c.x);
  let p1 = philox_mulhilo(PHILOX_M1, c.z);
  return vec4u(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

// Ten rounds, the key bumped by the Weyl constants between rounds.
fn philox4x32(counter: vec4u, key: vec2u) -> vec4u {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) {
      k = k + vec2u(PHILOX_W0, PHILOX_W1);
    }
    c = philox_round(c, k);
  }
  return c;
}

// A u32 mapped to [0, 1) on a 2^-24 grid: the top 24 bits, exactly representable in f32.
fn philox_unit(r: u32) -> f32 {
  return f32(r >> 8u) * (1.0 / 16777216.0);
}
