//! import common
//! import philox
// Inverted dropout with a counter-based mask (see lib/philox.wgsl):
//   keep[i] = philox word for element i >= threshold  (threshold = round(p * 2^32), computed on the CPU)
//   apply: out = keep ? a * scale : 0, scale = 1 / (1 - p)   (forward: a = x; backward: a = dy)
//   mask : out = keep ? 1 : 0
// The keep decision is an integer comparison, so a seed gives the same mask bit for bit on every
// adapter, and the backward pass regenerates the forward's mask instead of storing it.
// One invocation draws one Philox block and handles the 4 elements it covers.

const WG: u32 = 256u;

struct Params {
  n: u32,          // elements
  threshold: u32,  // drop when the random word is below this
  seed_lo: u32,
  seed_hi: u32,
  scale: f32,      // 1 / (1 - p)
  first_block: u32, // Philox block of element 0 of the bound range (a tensor over one binding runs in ranges)
}

@group(0) @binding(0) var<uniform> p: Params;

fn block_words(block: u32) -> vec4u {
  return philox4x32(vec4u(p.first_block + block, PHILOX_DOMAIN_DROPOUT, 0u, 0u), vec2u(p.seed_lo, p.seed_hi));
}

@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;

@compute @workgroup_size(WG)
fn apply(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let block = linear_index(gid, nwg, WG);
  let first = block * 4u;
  if (first >= p.n) { return; }
  let r = block_words(block);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k;
    if (i < p.n) {
      // select() rather than a multiply by 0: a dropped element is exactly 0 even if a[i] is inf.
      out[i] = select(0.0, a[i] * p.scale, r[k] >= p.threshold);
    }
  }
}

@compute @workgroup_size(WG)
fn mask(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let block = linear_index(gid, nwg, WG);
  let first = block * 4u;
  if (first >= p.n) { return; }
  let r = block_words(block);
  for (var k = 0u; k < 4u; k++) {
    let i = first + k;
    if (i < p.n) {
      out[i] = select(0.0, 1.0, r[k] >= p.threshold);
    }
  }
}
