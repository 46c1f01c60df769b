"""`make setup`: the pip options that point torch's install at PyTorch's CPU wheel index, if it can be reached.

Prints ``--extra-index-url URL`` when URL answers within a few seconds, else nothing (with a note on stderr):
an unreachable extra index costs pip ~15 s of retries for torch *and for each of its dependencies*, and where it
is unreachable (an offline mirror that serves a CPU wheel itself) the default index is the only way anyway.
``scripts/check_torch.py`` then says whether what got installed is a CPU build.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else ""
    if not url:
        return 0
    if reachable(url):
        print(f"--extra-index-url {url}")
    else:
        print(f"note: {url} is not reachable; installing torch from the default index", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
