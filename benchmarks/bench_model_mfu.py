"""Train-step throughput and model FLOPs utilisation (MFU) of a pretraining step vs the machine's matmul ceiling.

Compares, in one run: (1) the measured fp32 (CPU) / bf16 (GPU) matmul ceiling, (2) a CardioFMForPretraining step of a
preset (default small: 12 leads + PPG, 10 s at 100 Hz, 75 % masking), (3) timm VisionTransformer blocks of the
same width, depth and heads run forward+backward on the encoder's visible token count. The full comparison against
a same-size ViT-MAE (patch embedding, masking, decoder and loss included) and the finetuning step is
bench_step_vs_reference.py, which reuses the helpers here. FLOPs are counted by
torch.utils.flop_counter on the real step (matmuls and attention), so MFU = counted FLOPs / step time / ceiling.

    python benchmarks/bench_model_mfu.py --preset small --batch-size 32 --steps 3
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import cardiofm  # noqa: F401  (torchvision guard before timm)
from cardiofm.data.channels import CHANNEL_VOCAB
from cardiofm.models import create_model


def matmul_ceiling(device: str, dtype: torch.dtype, n: int = 0, repeats: int = 10) -> float:
    """Best sustained FLOP/s of an n x n matmul (2 n^3 FLOPs) on the device (n 0: 2048 on CPU, 8192 on CUDA, where
    a smaller one would measure kernel-launch latency)."""
    n = n or (8192 if device == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        sync(device)
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t) / repeats)
    return 2 * n ** 3 / best


def sync(device: str) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if device == "cuda":
        torch.cuda.synchronize()


def autocast_for(device: str):
    """bf16 autocast on CUDA, plain fp32 on CPU (bf16 is no faster there): a context-manager factory."""
    if device == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return lambda: torch.autocast("cpu", enabled=False)


def _register_cpu_attention_flops() -> None:
    """Teach the FLOP counter the fused CPU attention kernel (it counts only the CUDA ones): without this, every
    attention matmul of a CPU step would be missing from MFU."""
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    if not hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        return

    @fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
    def _forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query, key, value)

    @fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)
    def _backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)


try:
    _register_cpu_attention_flops()
except (AttributeError, TypeError, ValueError) as err:  # an older torch without these kernels or helpers
    print(f"note: CPU attention FLOPs not counted ({err})")


def count_flops(step) -> float:
    """FLOPs of one call of step (matmuls and attention, counted by torch.utils.flop_counter)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def time_step(step, device: str, steps: int) -> tuple[float, float]:
    """(counted FLOPs of one step, best seconds per step over `steps` timed runs after one warm-up)."""
    flops = count_flops(step)
    return flops, min(time_steps({"step": step}, device, steps)["step"])


def time_steps(steps: dict, device: str, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each step, the steps interleaved repeat by repeat so that load from other programs on a
    shared machine hits them alike (report the minimum)."""
    out: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            t = time.perf_counter()
            step()
            sync(device)
            out[name].append(time.perf_counter() - t)
    return out


def cardiofm_step(model, batch: dict, opt, autocast):
    """One optimiser step of the pretraining objective."""
    def step():
        with autocast():
            loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def timm_step(blocks, x: torch.Tensor, opt, autocast):
    """One optimiser step of a timm ViT block stack on x (B, N, D) with a mean-square dummy loss."""
    def step():
        with autocast():
            loss = blocks(x).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    """Measure and print the side-by-side comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    autocast = autocast_for(device)
    ceiling = matmul_ceiling(device, dtype)
    print(f"device {device} ({torch.get_num_threads()} threads), {dtype} matmul ceiling {ceiling / 1e9:.1f} GFLOP/s")

    torch.manual_seed(0)
    model = create_model(args.preset).to(device)
    cfg = model.config
    b, c, t = args.batch_size, len(cfg.preprocess["channels"]), int(cfg.window_s * cfg.sampling_rate)
    ids = torch.tensor([CHANNEL_VOCAB.index(n) for n in cfg.preprocess["channels"]], device=device)
    batch = {"signals": torch.randn(b, c, t, device=device) * 0.2, "channel_ids": ids.expand(b, -1).contiguous()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    flops, secs = time_step(cardiofm_step(model, batch, opt, autocast), device, args.steps)
    tokens = c * cfg.patches_per_window
    visible = int(tokens * (1 - cfg.mask_ratio))
    mfu = flops / secs / ceiling
    print(f"cardiofm {args.preset} pretraining step: batch {b} x {tokens} tokens ({visible} visible), "
          f"{flops / 1e9:.1f} GFLOP, {secs * 1e3:.0f} ms/step, {b / secs:.1f} windows/s, "
          f"{flops / secs / 1e9:.1f} GFLOP/s = MFU {100 * mfu:.1f} % of the matmul ceiling")

    from timm.models.vision_transformer import Block

    mlp_ratio = cfg.intermediate_size / cfg.hidden_size
    blocks = torch.nn.Sequential(*[Block(cfg.hidden_size, cfg.num_attention_heads, mlp_ratio,
                                         qkv_bias=True) for _ in range(cfg.num_hidden_layers)]).to(device)
    x = torch.randn(b, visible, cfg.hidden_size, device=device)
    opt_t = torch.optim.AdamW(blocks.parameters(), lr=1e-4, fused=device == "cuda")
    flops_t, secs_t = time_step(timm_step(blocks, x, opt_t, autocast), device, args.steps)
    mfu_t = flops_t / secs_t / ceiling
    print(f"timm ViT blocks (D={cfg.hidden_size}, depth {cfg.num_hidden_layers}, {cfg.num_attention_heads} heads, "
          f"{visible} tokens): {flops_t / 1e9:.1f} GFLOP, {secs_t * 1e3:.0f} ms/step = MFU {100 * mfu_t:.1f} %")
    print(f"ratio cardiofm / ceiling = {mfu:.3f}; cardiofm MFU / timm-blocks MFU = {mfu / mfu_t:.3f}")


if __name__ == "__main__":
    main()
