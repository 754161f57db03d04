"""Start-up hook: run cardiofm's torchvision guard just before anything imports torchvision.

`scripts/setup_env.sh` loads it from a `.pth` file, so tools that import timm or transformers before cardiofm (the
`accelerate` and `deepspeed` launchers, a user's notebook) work on CPU installs whose PyPI torchvision is a CUDA
build. It costs nothing until torchvision is imported; see `cardiofm/_compat.py` for the reason.
"""
import sys


class _TorchvisionGuard:
    """Meta-path finder that fires once, on the first `import torchvision`, and then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        try:
            import cardiofm._compat  # noqa: F401  (declares the missing op schemas)
        except ImportError:
            pass  # cardiofm not importable here: leave torchvision to its normal import
        return None


if not any(isinstance(f, _TorchvisionGuard) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionGuard())
