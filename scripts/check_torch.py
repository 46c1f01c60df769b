"""`make setup` on a machine without an NVIDIA driver: warn when the installed torch is a CUDA build anyway.

That happens when PyTorch's CPU wheel index was not reachable and the default index served PyPI's Linux wheel,
which depends on the CUDA packages (nvidia-*, triton). It is a warning, not a failure: that torch works on CPU
too, it is only several GB larger.
"""

from __future__ import annotations

import sys


def main() -> int:
    import torch

    if torch.version.cuda is not None:
        print(f"warning: torch {torch.__version__} is a CUDA build (CUDA {torch.version.cuda}) on a machine "
              "without an NVIDIA driver; the CPU wheel index was not reached. Where it is reachable, rerun "
              "`make clean setup` (TORCH_INDEX defaults to https://download.pytorch.org/whl/cpu).", file=sys.stderr)
    else:
        print(f"torch {torch.__version__}: CPU build", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
