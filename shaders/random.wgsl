//! import common
//! import philox
// Seeded random fills from the counter-based generator of lib/philox.wgsl: element i depends only on
// (seed, i), so a fill is reproducible whatever the dispatch shape. One invocation draws one Philox
// block (4 words) and writes the 4 elements it covers.
//   uniform: lo + (hi - lo) * u, u = top 24 bits / 2^24 in [0, 1)
//   normal : Box-Muller on word pairs (2j, 2j+1): r = sqrt(-2 ln u1), u1 in (0, 1] (never log 0),
//            theta in [-pi, pi) (the range where WGSL bounds the error of sin/cos);
//            element 2j = mean + std * r cos(theta), 2j+1 = mean + std * r sin(theta)

const WG: u32 = 256u;
const PI: f32 = 3.14159265358979;

struct Params {
  n: u32,
  seed_lo: u32,
  seed_hi: u32,
  a: f32,  // uniform: lo;      normal: mean
  b: f32,  // uniform: hi - lo; normal: std
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn uniform_fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let block = linear_index(gid, nwg, WG);
  let first = block * 4u;
  if (first >= p.n) { return; }
  let r = philox4x32(vec4u(block, PHILOX_DOMAIN_UNIFORM, 0u, 0u), vec2u(p.seed_lo, p.seed_hi));
  for (var k = 0u; k < 4u; k++) {
    if (first + k < p.n) {
      out[first + k] = p.a + p.b * philox_unit(r[k]);
    }
  }
}

@compute @workgroup_size(WG)
fn normal_fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let block = linear_index(gid, nwg, WG);
  let first = block * 4u;
  if (first >= p.n) { return; }
  let r = philox4x32(vec4u(block, PHILOX_DOMAIN_NORMAL, 0u, 0u), vec2u(p.seed_lo, p.seed_hi));
  var z: array<f32, 4>;
  for (var j = 0u; j < 2u; j++) {
    let u1 = philox_unit(r[2u * j]) + (1.0 / 16777216.0);
    let theta = (2.0 * philox_unit(r[2u * j + 1u]) - 1.0) * PI;
    let radius = sqrt(-2.0 * log(u1));
    z[2u * j] = radius * cos(theta);
    z[2u * j + 1u] = radius * sin(theta);
  }
  for (var k = 0u; k < 4u; k++) {
    if (first + k < p.n) {
      out[first + k] = p.a + p.b * z[k];
    }
  }
}
