//! import common
// Nearest-neighbour upsampling by an integer factor S, NCHW (torch.nn.Upsample(scale_factor=S,
// mode='nearest') for integer S):
//   forward : y[n,c,oy,ox] = x[n,c,oy/S,ox/S]                       (y is [N, C, H*S, W*S])
//   backward: dx[n,c,iy,ix] = sum over a, b < S of dy[n,c,iy*S+a,ix*S+b]
// Both are gathers (no atomics): each invocation writes V consecutive elements of its output, stepping
// (plane, row, column) with an odometer so the index divisions run once per invocation.

const WG: u32 = 64u;
// Elements per invocation: many on CPU implementations (lavapipe), where per-invocation overhead and
// integer division dominate; 1 on real GPUs.
override V: u32 = 1u;

struct Params {
  planes: u32,  // N * C
  h: u32,       // input rows
  w: u32,       // input columns
  s: u32,       // scale factor
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// The element after (plane, row, column) = o.xyz in a rows x cols plane.
fn next_element(o: vec3u, rows: u32, cols: u32) -> vec3u {
  var r = vec3u(o.x, o.y, o.z + 1u);
  if (r.z == cols) {
    r.z = 0u;
    r.y += 1u;
    if (r.y == rows) {
      r.y = 0u;
      r.x += 1u;
    }
  }
  return r;
}

fn first_element(start: u32, rows: u32, cols: u32) -> vec3u {
  return vec3u(start / (rows * cols), (start / cols) % rows, start % cols);
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let rows = p.h * p.s;
  let cols = p.w * p.s;
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(p.planes * rows * cols, start + V);
  var o = first_element(start, rows, cols);
  for (var i = start; i < end; i++) {
    dst[i] = src[(o.x * p.h + o.y / p.s) * p.w + o.z / p.s];
    o = next_element(o, rows, cols);
  }
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let cols = p.w * p.s;
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(p.planes * p.h * p.w, start + V);
  var o = first_element(start, p.h, p.w);
  for (var i = start; i < end; i++) {
    // The S x S block of dy this element was copied to, summed row by row.
    let top = (o.x * p.h + o.y) * p.s * cols + o.z * p.s;
    var acc = 0.0;
    for (var a = 0u; a < p.s; a++) {
      for (var b = 0u; b < p.s; b++) {
        acc += src[top + a * cols + b];
      }
    }
    dst[i] = acc;
    o = next_element(o, p.h, p.w);
  }
}
