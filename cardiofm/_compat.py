"""Import-time guard for CPU machines where PyPI's torchvision is a CUDA build.

timm imports torchvision, and transformers imports it whenever it is installed. PyPI ships torchvision only as
CUDA builds, whose `_C.so` fails to load against a CPU torch (`operator torchvision::nms does not exist`). Loading the
library when possible, and otherwise declaring the op schemas, lets torchvision's Python side import; its C++ ops
(nms, roi_align) then raise if called, and cardiofm never calls them.
"""
from __future__ import annotations

import importlib.util
import os
import sys


def _declare_torchvision_ops() -> None:
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return
    import torch

    spec = importlib.util.find_spec("torchvision")
    lib_dir = os.path.dirname(spec.origin)
    for name in os.listdir(lib_dir):
        if name.startswith("_C") and name.endswith(".so"):
            try:
                torch.ops.load_library(os.path.join(lib_dir, name))
                return
            except (OSError, RuntimeError):
                break
    try:
        torch.ops.torchvision.nms  # noqa: B018 - already registered by someone else
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP.append(lib)  # the Library object must stay alive for the schemas to stay registered


_KEEP: list = []
_declare_torchvision_ops()
