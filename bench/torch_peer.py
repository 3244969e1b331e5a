#!/usr/bin/env python3
"""PyTorch (CPU) peer of the wgsl-nn benchmark suite (bench/torch.ts spawns it once per suite run).

Reads one JSON job from stdin: the sampling limits, the thread count, the kernel cases (op, sizes and
the input specs of bench/cases.ts, whose values are regenerated here with the same generator as
bench/kernel-cases.ts caseData, so outputs can be compared) and the end-to-end cases (a key and its
sizes). Writes progress lines to stderr and one JSON object to stdout: versions, threads, BLAS library,
and per case the median milliseconds of repeated timings after a warm-up (or the error).

Timing: one warm-up call, one estimate call, then calls until `maxTime` seconds have passed and at
least `minSamples` (calls slower than `longCallMs`: `longCallSamples`) samples were taken; the median
sample is reported. An end-to-end step whose estimate exceeds `slowStepMs` is reported from that call. Everything is synchronous on the CPU, so a call's end is its result's availability.
"""
import json
import math
import os
import platform
import sys
import time
import traceback


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fail(reason):
    print(json.dumps({"ok": False, "reason": reason}), flush=True)
    sys.exit(0)


try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 - any import failure means "no torch column"
    fail(f"cannot import torch/numpy: {e}")


def case_data(n, seed, lo=-1.0, hi=1.0):
    """The mulberry32 stream of bench/kernel-cases.ts caseData, in uint32 arithmetic (numpy)."""
    a0 = (seed * 0x9E3779B9) & 0xFFFFFFFF
    i = np.arange(1, n + 1, dtype=np.uint64)
    t = ((a0 + i * 0x6D2B79F5) & 0xFFFFFFFF).astype(np.uint32)
    with np.errstate(over="ignore"):
        t = (t ^ (t >> np.uint32(15))) * (t | np.uint32(1))
        t = t ^ (t + (t ^ (t >> np.uint32(7))) * (t | np.uint32(61)))
        r = (t ^ (t >> np.uint32(14))).astype(np.float64) / 4294967296.0
    return (lo + (hi - lo) * r).astype(np.float32)


def spec_tensor(spec):
    n = math.prod(spec["shape"])
    return torch.from_numpy(case_data(n, spec["seed"], spec["lo"], spec["hi"])).reshape(spec["shape"])


def time_call(fn, limits, slow_ms=None):
    """Median ms of fn() after a warm-up; a second call slower than slow_ms is reported alone."""
    fn()  # warm-up: allocations, oneDNN primitive creation
    t0 = time.perf_counter()
    fn()
    est = (time.perf_counter() - t0) * 1000
    if slow_ms is not None and est > slow_ms:
        return {"medianMs": est, "meanMs": est, "samples": 1, "note": "timed once (slow)"}
    min_samples = limits["minSamples"]
    if est > limits["longCallMs"]:
        min_samples = min(min_samples, limits["longCallSamples"])
    min_samples = max(1, min_samples)
    times = []
    start = time.perf_counter()
    while len(times) < min_samples or (time.perf_counter() - start < limits["maxTime"] and len(times) < 10000):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    m = len(times) // 2
    med = times[m] if len(times) % 2 else (times[m - 1] + times[m]) / 2
    return {"medianMs": med, "meanMs": sum(times) / len(times), "samples": len(times)}


# ------------------------------------------------------------------------------------ kernel cases


def conv_backward(dy, x_or_none, w, x_shape, w_shape, stride, padding, transposed, want):
    """The kernels autograd runs for a conv's input / weight gradient (aten::convolution_backward)."""
    x = x_or_none if x_or_none is not None else torch.empty(x_shape)
    mask = [want == "input", want == "weight", False]
    if hasattr(torch.ops.aten, "convolution_backward"):
        out = torch.ops.aten.convolution_backward(
            dy, x, w if w is not None else torch.empty(w_shape), None, [stride, stride], [padding, padding], [1, 1], transposed, [0, 0], 1, mask
        )
        return out[0] if want == "input" else out[1]
    if transposed:
        raise RuntimeError("aten::convolution_backward missing (torch < 1.11)")
    if want == "input":
        return torch.nn.grad.conv2d_input(x_shape, w, dy, stride=stride, padding=padding)
    return torch.nn.grad.conv2d_weight(x, w_shape, dy, stride=stride, padding=padding)


def kernel_fn(case):
    """A no-argument callable running the case's op on its inputs, and the output it returns."""
    op = case["op"]
    p = case["params"]
    t = {s["name"]: spec_tensor(s) for s in case["inputs"]}
    if op == "matmul":
        return lambda: torch.matmul(t["a"], t["b"])
    if op == "nearest.squaredDistance":
        # cdist through matrix products (as the kernel: |q|^2 + |m|^2 - 2 q.m), squared, min over the memory.
        return lambda: torch.cdist(t["q"], t["m"], compute_mode="use_mm_for_euclid_dist").pow(2).amin(1)
    family, _, pass_ = op.partition(".")
    if family == "conv2d":
        s, pad = p["s"], p["p"]
        x_shape = [p["n"], p["c"], p["h"], p["w"]]
        w_shape = [p["o"], p["c"], p["k"], p["k"]]
        if pass_ == "forward":
            return lambda: F.relu(F.conv2d(t["x"], t["w"], t["b"], stride=s, padding=pad))
        if pass_ == "backwardInput":
            return lambda: conv_backward(t["dy"], None, t["w"], x_shape, w_shape, s, pad, False, "input")
        return lambda: conv_backward(t["dy"], t["x"], None, x_shape, w_shape, s, pad, False, "weight")
    if family == "convTranspose2d":
        s, pad = p["s"], p["p"]
        x_shape = [p["n"], p["ci"], p["h"], p["w"]]
        w_shape = [p["ci"], p["co"], p["k"], p["k"]]
        if pass_ == "forward":
            return lambda: F.conv_transpose2d(t["x"], t["w"], t["b"], stride=s, padding=pad)
        if pass_ == "backwardInput":
            return lambda: conv_backward(t["dy"], None, t["w"], x_shape, w_shape, s, pad, True, "input")
        return lambda: conv_backward(t["dy"], t["x"], None, x_shape, w_shape, s, pad, True, "weight")
    if family == "linear":
        if pass_ == "forward":
            return lambda: F.relu(F.linear(t["x"], t["w"], t["b"]))
        if pass_ == "backwardInput":
            return lambda: torch.matmul(t["dy"], t["w"])
        return lambda: torch.matmul(t["dy"].t(), t["x"])
    raise ValueError(f"no PyTorch counterpart for op {op}")


def sampled(out, count):
    """`count` evenly spaced values of the flattened output (for a rel-err check in bench/torch.ts)."""
    flat = out.detach().reshape(-1)
    n = flat.numel()
    idx = [math.floor(i * (n - 1) / max(count - 1, 1)) for i in range(count)] if n > 1 else [0]
    return {"size": n, "sample": [float(flat[i]) for i in idx]}


def run_kernel(case, limits, sample_count):
    fn = kernel_fn(case)
    with torch.no_grad():
        r = time_call(fn, limits)
        r.update(sampled(fn(), sample_count))
    return r


# ------------------------------------------------------------------------------------ end-to-end cases


def seed_cnn(size, classes):
    """The seed CNN (src/cnn/model.ts): [Conv3x3 + ReLU + MaxPool2] x 3, Linear(F,128), ReLU, Dropout(0.5), Linear(128,K)."""
    f = size
    for _ in range(3):
        f = (f - 2) // 2
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * f * f, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, classes),
    )


def seed_batch(batch, size, classes):
    x = torch.from_numpy(case_data(batch * size * size, 11, 0, 1)).reshape(batch, 1, size, size)
    y = torch.arange(batch) % classes
    return x, y


def seed_train(p):
    model = seed_cnn(p["size"], p["classes"]).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = seed_batch(p["batch"], p["size"], p["classes"])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def seed_infer(p):
    model = seed_cnn(p["size"], p["classes"]).eval()
    x, _ = seed_batch(p["batch"], p["size"], p["classes"])

    def step():
        with torch.no_grad():
            probs = F.softmax(model(x), dim=-1)
        return float(probs[0, 0])

    return step


def dcgan_init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def gan_models(p):
    """The GANs of src/gan/models.ts (unconditional)."""
    nz = p["latent"]
    if p["arch"] == "dense":
        h, s = p["hidden"], p["size"]
        G = nn.Sequential(nn.Linear(nz, h), nn.ReLU(), nn.Linear(h, s * s), nn.Sigmoid())
        D = nn.Sequential(nn.Flatten(), nn.Linear(s * s, h), nn.ReLU(), nn.Linear(h, 1))
        return G, D
    k = int(math.log2(p["size"] // 4))
    ngf, ndf = p["ngf"], p["ndf"]
    ch = ngf * 2 ** (k - 1)
    g = [nn.Unflatten(1, (nz, 1, 1)), nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
    for _ in range(k - 1):
        g += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU()]
        ch //= 2
    g += [nn.ConvTranspose2d(ch, 1, 4, 2, 1, bias=False), nn.Tanh()]
    ch = ndf
    d = [nn.Conv2d(1, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
    for _ in range(k - 1):
        d += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2)]
        ch *= 2
    d += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False), nn.Flatten()]
    G, D = nn.Sequential(*g), nn.Sequential(*d)
    G.apply(dcgan_init)
    D.apply(dcgan_init)
    return G, D


def gan_iteration(p):
    """One D step (real vs detached fake) and one G step through a frozen D; BCE with logits; Adam(2e-4, 0.5)."""
    G, D = gan_models(p)
    G.train()
    D.train()
    optG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    n, s = p["batch"], p["size"]
    real = torch.from_numpy(case_data(n * s * s, 11, 0, 1)).reshape(n, 1, s, s)
    if p["arch"] != "dense":
        real = real * 2 - 1  # the DCGAN's tanh range
    ones = torch.ones(n, 1)
    zeros = torch.zeros(n, 1)
    bce = F.binary_cross_entropy_with_logits

    def step():
        optD.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = G(torch.randn(n, p["latent"]))
        loss_d = bce(D(real), ones) + bce(D(fake), zeros)
        loss_d.backward()
        optD.step()
        optG.zero_grad(set_to_none=True)
        for q in D.parameters():
            q.requires_grad_(False)
        loss_g = bce(D(G(torch.randn(n, p["latent"]))), ones)
        loss_g.backward()
        optG.step()
        for q in D.parameters():
            q.requires_grad_(True)
        return loss_d.item() + loss_g.item()

    return step


def linear_readback(p):
    """The headline GEMM through the functional API: y = x w^T, [m,k] x [n,k]^T."""
    x = torch.from_numpy(case_data(p["m"] * p["k"], 1)).reshape(p["m"], p["k"])
    w = torch.from_numpy(case_data(p["n"] * p["k"], 2)).reshape(p["n"], p["k"])

    def step():
        with torch.no_grad():
            return float(F.linear(x, w)[0, 0])

    return step


def conv_readback(p):
    x = torch.from_numpy(case_data(p["n"] * p["c"] * p["h"] * p["w"], 1, 0, 1)).reshape(p["n"], p["c"], p["h"], p["w"])
    w = torch.from_numpy(case_data(p["o"] * p["c"] * p["k"] * p["k"], 2)).reshape(p["o"], p["c"], p["k"], p["k"])
    b = torch.from_numpy(case_data(p["o"], 3))

    def step():
        with torch.no_grad():
            return float(F.conv2d(x, w, b)[0, 0, 0, 0])

    return step


E2E = {
    "seed-train": seed_train,
    "seed-infer": seed_infer,
    "gan": gan_iteration,
    "linear-readback": linear_readback,
    "conv-readback": conv_readback,
}


def run_e2e(case, limits, slow_ms):
    step = E2E[case["key"]](case["params"])
    last = {}

    def call():
        last["value"] = step()

    r = time_call(call, limits, slow_ms)
    v = last.get("value")
    r["finite"] = v is not None and math.isfinite(v)
    return r


# ------------------------------------------------------------------------------------ main


def blas_library():
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if any(k in line for k in ("blas", "mkl_", "libmkl"))}
        return ", ".join(sorted(lib.rsplit("/", 1)[-1] for lib in libs)) or "none loaded"
    except OSError:
        return "unknown"


def main():
    job = json.load(sys.stdin)
    threads = int(job.get("threads", 2))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    limits = job["limits"]
    sample_count = int(job.get("sampleCount", 256))
    # A first GEMM so the BLAS library is loaded before it is named.
    torch.matmul(torch.ones(64, 64), torch.ones(64, 64))
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "threads": torch.get_num_threads(),
        "interopThreads": torch.get_num_interop_threads(),
        "blas": blas_library(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "env": {k: v for k, v in os.environ.items() if k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")},
    }
    log(f"torch {info['torch']} (python {info['python']}), {info['threads']} thread(s), BLAS {info['blas']}, oneDNN {info['mkldnn']}")
    kernels, e2e = {}, {}
    for case in job.get("kernels", []):
        try:
            r = run_kernel(case, limits, sample_count)
            log(f"  torch {case['id']}: {r['medianMs']:.3f} ms")
        except Exception as e:  # noqa: BLE001 - reported per case
            r = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            log(f"  torch {case['id']}: FAILED {r['error']}")
        kernels[case["id"]] = r
    for case in job.get("endToEnd", []):
        try:
            r = run_e2e(case, limits, job.get("slowStepMs"))
            log(f"  torch {case['id']}: {r['medianMs']:.1f} ms/step")
        except Exception as e:  # noqa: BLE001
            r = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            log(f"  torch {case['id']}: FAILED {r['error']}")
            log(traceback.format_exc(limit=2))
        e2e[case["id"]] = r
    print(json.dumps({"ok": True, "info": info, "kernels": kernels, "endToEnd": e2e}), flush=True)


if __name__ == "__main__":
    main()
