//! import common
// Sum (and mean) of a float32 tensor over any set of axes.
//
// The host merges neighbouring axes of the same kind, so the problem is: M outputs, each the sum of R
// inputs, where an output index splits over at most 4 "kept" dims and a reduction index over at most
// 4 "reduced" dims (shapes and strides in the uniform struct, innermost first; unused dims have
// shape 1 and stride 0).
//
// No shared memory and no atomics (slow or absent on lavapipe, and WGSL has no f32 atomics): each
// invocation sums one contiguous CHUNK of one output's reduction range serially and writes a partial
// sum (see PARTS_OUTER for the layout of the partials). When parts > 1 the host runs this same kernel
// again on the partials (an [M, parts] or [parts, M] problem) until one value per output remains. A serial
// float32 sum of at most `chunk` terms per level keeps the rounding error small even for millions of
// elements (e.g. 32*224*224 = 1.6M elements: 3 levels of <= 256 terms).

const WG: u32 = 64u;

// Which invocation takes which (output, chunk), and where its partial goes:
//   false: g = o * parts + chunk, partials [M, parts]  (for a reduced innermost dim: each invocation
//          streams through contiguous memory)
//   true : g = chunk * M + o, partials [parts, M]      (for a kept innermost dim: neighbouring
//          invocations are neighbouring outputs, so they read neighbouring addresses together)
override PARTS_OUTER: bool = false;

struct Params {
  kshape: vec4u,   // kept dims: decompose the output index
  kstride: vec4u,
  rshape: vec4u,   // reduced dims: walked by the chunk loop
  rstride: vec4u,
  m: u32,          // number of outputs
  r: u32,          // reduction length per output
  chunk: u32,      // terms per invocation
  parts: u32,      // chunks per output = ceil(r / chunk)
  alpha: f32,      // scale of each result: 1/R for a mean in the last level, else 1
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = linear_index(gid, nwg, WG);
  if (g >= p.m * p.parts) { return; }
  var o = g / p.parts;
  var part = g - o * p.parts;
  if (PARTS_OUTER) {
    part = g / p.m;
    o = g - part * p.m;
  }

  // Offset of output o's first input element.
  var rem = o;
  var base = 0u;
  for (var d = 0u; d < 4u; d++) {
    let c = rem % p.kshape[d];
    rem = rem / p.kshape[d];
    base += c * p.kstride[d];
  }

  // Multi-index (innermost first) and offset of this chunk's first reduced element.
  let start = part * p.chunk;
  let end = min(p.r, start + p.chunk);
  var idx = vec4u(0u);
  rem = start;
  var off = base;
  for (var d = 0u; d < 4u; d++) {
    idx[d] = rem % p.rshape[d];
    rem = rem / p.rshape[d];
    off += idx[d] * p.rstride[d];
  }

  // Walk the chunk with an odometer instead of dividing per element. Offsets use wrapping u32
  // arithmetic: the subtraction on a carry always lands back inside the buffer.
  let d0 = p.rshape.x;
  let s0 = p.rstride.x;
  var acc = 0.0;
  for (var k = start; k < end; k++) {
    acc += x[off];
    idx.x += 1u;
    off += s0;
    if (idx.x == d0) {
      idx.x = 0u;
      off -= d0 * s0;
      idx.y += 1u;
      off += p.rstride.y;
      if (idx.y == p.rshape.y) {
        idx.y = 0u;
        off -= p.rshape.y * p.rstride.y;
        idx.z += 1u;
        off += p.rstride.z;
        if (idx.z == p.rshape.z) {
          idx.z = 0u;
          off -= p.rshape.z * p.rstride.z;
          idx.w += 1u;
          off += p.rstride.w;
        }
      }
    }
  }
  out[g] = p.alpha * acc;
}
