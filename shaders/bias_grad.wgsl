//! import common
// Bias gradient: db[c] = sum of dy over every axis except axis 1, for dy viewed as [A, C, B]
// (A = leading batch axis, B = product of the trailing axes; [N,C] has B = 1, [N,C,H,W] has B = H*W).
// A gather per channel, no atomics.

const WG: u32 = 64u;

struct Params {
  A: u32,
  C: u32,
  B: u32,
  slope: f32,   // leaky ReLU slope of the gate
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

// A fused activation's backward folded into the read of dy (ActivationGate in src/kernels/activation.ts):
// with GATE = ACT_<name>, dy[i] is read as dy[i] * act'(y[i]), y the layer's forward output (dy's
// shape) at binding 3, which the host binds to dy itself when GATE is ACT_NONE. gate4 aliases it.
override GATE: u32 = 0u;
@group(0) @binding(3) var<storage, read> gate: array<f32>;

fn dy_at(i: u32) -> f32 {
  if (GATE == ACT_NONE) {
    return dy[i];
  }
  return dy[i] * activate_grad_from_output(GATE, gate[i], p.slope);
}

// B = 1 ([A, C]): one invocation per channel walks the A rows; neighbouring invocations read
// neighbouring elements of each row.
@compute @workgroup_size(WG)
fn sum_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  for (var ch = gid.x; ch < p.C; ch += nwg.x * WG) {
    var s = 0.0;
    for (var a = 0u; a < p.A; a++) {
      s += dy_at(a * p.C + ch);
    }
    db[ch] = s;
  }
}

var<workgroup> partial: array<f32, WG>;

// Adds the WG invocations' partial sums of channel ch (a tree reduction in workgroup memory) and writes
// db[ch]. Called by every invocation of the workgroup (uniform control flow: it has barriers).
fn finish_channel(ch: u32, lid: u32, s: f32) {
  partial[lid] = s;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) {
      partial[lid] += partial[lid + half];
    }
    workgroupBarrier();
  }
  // Only invocation 0 writes and reads partial[0], so the next channel may start at once.
  if (lid == 0u) {
    db[ch] = partial[0];
  }
}

// B > 1: one workgroup per channel (grid-stride over channels); its WG invocations each sum a strided
// share of the A*B elements, then finish_channel adds the WG partial sums.
@compute @workgroup_size(WG)
fn sum_spatial(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  for (var ch = wid.x; ch < p.C; ch += nwg.x) {
    var s = 0.0;
    for (var a = 0u; a < p.A; a++) {
      let base = (a * p.C + ch) * p.B;
      for (var i = lid; i < p.B; i += WG) {
        s += dy_at(base + i);
      }
    }
    finish_channel(ch, lid, s);
  }
}

// B a multiple of 4: as sum_spatial, reading dy as vec4s (a quarter of the storage loads, each emulated
// per lane on CPU adapters). The binding aliases dy.
@group(0) @binding(1) var<storage, read> dy4: array<vec4f>;
@group(0) @binding(3) var<storage, read> gate4: array<vec4f>;

fn dy4_at(i: u32) -> vec4f {
  if (GATE == ACT_NONE) {
    return dy4[i];
  }
  let y = gate4[i];
  let g = vec4f(
    activate_grad_from_output(GATE, y.x, p.slope),
    activate_grad_from_output(GATE, y.y, p.slope),
    activate_grad_from_output(GATE, y.z, p.slope),
    activate_grad_from_output(GATE, y.w, p.slope),
  );
  return dy4[i] * g;
}

@compute @workgroup_size(WG)
fn sum_spatial_vec4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let b4 = p.B / 4u;
  for (var ch = wid.x; ch < p.C; ch += nwg.x) {
    var s = vec4f(0.0);
    for (var a = 0u; a < p.A; a++) {
      let base = (a * p.C + ch) * b4;
      for (var i = lid; i < b4; i += WG) {
        s += dy4_at(base + i);
      }
    }
    finish_channel(ch, lid, (s.x + s.y) + (s.z + s.w));
  }
}
