"""Build a pool of augmented crops of real photographs shipped in Debian wallpaper packages.

    python scripts/build_photo_pool.py --install --size 128 --crops-per-photo 64 --seed 0 \\
        --out runs/photo_pool.npz
    python scripts/build_photo_pool.py --max-side 512 --export-photos runs/photos   # the photos themselves

Only the photographs listed in PHOTOS below are used: every candidate package was installed
and looked at, and drawings, renders, abstract art and heavily edited images were left out
(EXCLUDED says why, per package or file). For each photo the license and copyright line are
read from the package's machine-readable /usr/share/doc/PKG/copyright (DEP-5: the most
specific matching `Files:` stanza wins). Never reads scikit-image's sample photos or the test
data under ../shared (they are evaluation images).

`--install` runs `apt-get install --no-install-recommends` for the packages (root; add
`--apt-update` on a machine without package lists). Writes the pool (`.npz` or `.pt`, see
novelviews.synth.photos) and, beside it, `<out>.json`: per package its version, license(s),
photo count and the list of photos. The pool goes under runs/, which git ignores.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from novelviews.synth.photos import CropConfig, build_pool, load_photo, save_pool

REPO = Path(__file__).resolve().parents[1]

_MATE = "/usr/share/backgrounds/mate/nature"
_BG = "/usr/share/backgrounds"
_KDE = "/usr/share/wallpapers"

PHOTOS: dict[str, list[str]] = {
    # MATE's "nature" set: 12 photographs (macro, landscape). Its abstract/ and desktop/ sets
    # are drawings and renders, and are left out.
    "mate-backgrounds": [f"{_MATE}/{n}.jpg" for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
        "Storm", "TwoWings", "Wood", "YellowFlower")],
    # KDE Plasma wallpapers that are photographs; each is a folder, of which the largest image
    # of contents/images/ is used (the others are the same photo at smaller sizes).
    "plasma-workspace-wallpapers": [f"{_KDE}/{n}" for n in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
        "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")],
    # Ubuntu (Touch) 16.04 community wallpapers: all photographs but umang (a render).
    "lomiri-wallpapers-16.04": [f"{_BG}/{n}.jpg" for n in (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
        "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
        "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
        "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
        "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi")],
    # 20.04 set: one photograph (a nuthatch); Fossa and Painting-Colors are drawings,
    # Infinite-Sea a Milky Way photo under a strong colour-gradient overlay.
    "lomiri-wallpapers-20.04": [f"{_BG}/Kleiber_by_Lukas_Baubkus.jpg"],
}

EXCLUDED: dict[str, str] = {
    "gnome-backgrounds": "GNOME 43 set: renders and abstract patterns only (no photographs)",
    "ukui-wallpapers": "digital illustrations only",
    "sway-backgrounds": "logo drawings only",
    "desktop-base": "Debian theme artwork (drawings), logos, boot splashes",
    "mate-backgrounds: abstract/, desktop/": "drawings, renders, logos",
    "plasma-workspace-wallpapers: the other 19 wallpapers": "renders and drawings (Altai, Autumn, Canopee, "
        "Cascade, Cluster, Elarun, Flow, FlyingKonqui, Honeywave, IceCold, Kay, Kokkini, MilkyWay, Opal, "
        "PastelHills, Patak, SafeLanding, Shell, Volna)",
    "lomiri-wallpapers-16.04: umang": "render",
    "lomiri-wallpapers-20.04: Fossa, Painting-Colors, Infinite-Sea": "drawings; heavily edited photo",
}

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


# --------------------------------------------------------------------------- packages


def run(cmd: list[str]) -> str:
    """Run a command, return its stdout; exit with its stderr on failure."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr.strip()}")
    return res.stdout


def apt_install(packages: list[str], update: bool) -> None:
    env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive"]
    if update:
        print("apt-get update", flush=True)
        run(env_cmd + ["apt-get", "update"])
    print("apt-get install", " ".join(packages), flush=True)
    res = subprocess.run(env_cmd + ["apt-get", "install", "-y", "--no-install-recommends", *packages],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"apt-get install failed ({res.returncode}); as root, try --apt-update\n{res.stderr.strip()}")


def package_version(pkg: str) -> str | None:
    """Installed version of a Debian package, or None when it is not installed."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg], capture_output=True, text=True)
    if res.returncode != 0:
        return None
    status, _, version = res.stdout.partition("\t")
    return version if status.endswith(" installed") else None


def package_files(pkg: str) -> list[str]:
    return [line for line in run(["dpkg", "-L", pkg]).splitlines() if line.startswith("/")]


# --------------------------------------------------------------------------- copyright (DEP-5)


def parse_copyright(path: Path) -> list[dict]:
    """Stanzas of a DEP-5 copyright file that have `Files:`: {files: [...], copyright, license}.

    Continuation lines (leading space) extend a field; `License:` keeps its first line (the
    short name); `Copyright:` keeps its lines joined by "; ".
    """
    stanzas, cur, field = [], {}, None
    for line in path.read_text(errors="replace").splitlines() + [""]:
        if not line.strip():
            if "Files" in cur:
                holders = [s.strip() for s in cur.get("Copyright", "").split("\n") if s.strip()]
                stanzas.append({"files": cur["Files"].split(), "copyright": "; ".join(holders),
                                "license": cur.get("License", "").split("\n")[0].strip()})
            cur, field = {}, None
        elif line[0] in " \t" and field is not None:
            cur[field] += "\n" + line.strip()
        elif ":" in line:
            field, _, value = line.partition(":")
            cur[field] = value.strip()
    return stanzas


def license_for(file: str, stanzas: list[dict]) -> dict:
    """The stanza that governs an installed file.

    Upstream patterns are relative to the source tree while `file` is the installed path, so a
    pattern matches when it matches a path suffix of `file`; failing that, when its last
    component matches the file's name (lomiri ships `16.04/X.jpg` as /usr/share/backgrounds/X.jpg).
    Exact matches beat wildcards, later stanzas beat earlier ones (DEP-5); `debian/*` stanzas
    (packaging files) never match.
    """
    name = file.rsplit("/", 1)[-1]
    best, best_score = None, -1
    for st in stanzas:
        for pat in st["files"]:
            if pat.startswith("debian/"):
                continue
            wild = any(c in pat for c in "*?[")
            if fnmatch.fnmatchcase(file, "*/" + pat) or fnmatch.fnmatchcase(file, pat):
                score = 1 if wild else 3
            elif fnmatch.fnmatchcase(name, pat.rsplit("/", 1)[-1]) and not wild:
                score = 2
            elif pat == "*":
                score = 0
            else:
                continue
            if score >= best_score:
                best, best_score = st, score
    if best is None:
        return {"license": "unknown", "copyright": "unknown"}
    return {"license": best["license"], "copyright": best["copyright"]}


# --------------------------------------------------------------------------- photos


def forbidden_roots() -> list[Path]:
    """Folders whose images must never enter the pool: scikit-image's data, the test data."""
    roots = [REPO.parent / "shared", REPO / "shared"]
    spec = importlib.util.find_spec("skimage")
    if spec is not None and spec.origin:
        roots.append(Path(spec.origin).resolve().parent / "data")
    return [r.resolve() for r in roots]


def check_allowed(path: Path, roots: list[Path]) -> None:
    p = path.resolve()
    for r in roots:
        if p == r or r in p.parents:
            sys.exit(f"refusing {p}: it lies under {r} (test / sample data must not be used for training)")


def resolve_photo(entry: str, files: list[str]) -> str:
    """The image file of a PHOTOS entry: the file itself, or for a Plasma wallpaper folder the
    largest image of its contents/images/ (by pixel count)."""
    from PIL import Image

    if entry in files and Path(entry).is_file():
        return entry
    prefix = entry.rstrip("/") + "/contents/images/"
    cands = [f for f in files if f.startswith(prefix) and f.lower().endswith(IMAGE_SUFFIXES) and Path(f).is_file()]
    if not cands:
        sys.exit(f"{entry}: not a file of its package and no images under {prefix}")

    def pixels(f: str) -> int:
        with Image.open(f) as im:
            return im.size[0] * im.size[1]

    return max(sorted(cands), key=pixels)


def upstream_metadata(file: str) -> dict:
    """Plasma wallpapers carry a metadata.json of their own, with the wallpaper's author and a
    per-wallpaper license (which differs from the package's copyright file: recorded as
    `upstream_license` next to it)."""
    if "/usr/share/wallpapers/" not in file:
        return {}
    meta = Path(file.split("/contents/")[0]) / "metadata.json"
    try:
        plugin = json.loads(meta.read_text())["KPlugin"]
    except (OSError, KeyError, ValueError):
        return {}
    out = {}
    if plugin.get("License"):
        out["upstream_license"] = plugin["License"]
    authors = [a.get("Name") for a in plugin.get("Authors", []) if a.get("Name")]
    if authors:
        out["author"] = ", ".join(authors)
    return out


def collect(packages: list[str]) -> list[dict]:
    roots = forbidden_roots()
    out = []
    for pkg in packages:
        version = package_version(pkg)
        if version is None:
            sys.exit(f"package {pkg} is not installed: run with --install (as root)")
        files = package_files(pkg)
        stanzas = parse_copyright(Path("/usr/share/doc") / pkg / "copyright")
        for entry in PHOTOS[pkg]:
            f = resolve_photo(entry, files)
            check_allowed(Path(f), roots)
            out.append({"package": pkg, "version": version, "file": f, **license_for(f, stanzas),
                        **upstream_metadata(f)})
    return out


def export_photos(folder: Path, photos: list, sources: list[dict]) -> None:
    """Each photo as ``PACKAGE__NAME.jpg`` (quality 95) in ``folder``, with ``sources.json``
    (package, version, original file, license, copyright, author of every photo)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for img, src in zip(photos, sources):
        stem = Path(src["file"]).stem if "/usr/share/wallpapers/" not in src["file"] else \
            src["file"].split("/usr/share/wallpapers/")[1].split("/")[0]
        name = f"{src['package']}__{stem}.jpg"
        Image.fromarray(img.numpy()).save(folder / name, quality=95)
        rows.append({"image": name, **src})
    (folder / "sources.json").write_text(json.dumps(rows, indent=2) + "\n")
    size = sum(f.stat().st_size for f in folder.glob("*.jpg"))
    print(f"{len(rows)} photos -> {folder} ({size / 2**20:.1f} MiB) + sources.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--install", action="store_true", help="apt-get install the packages first (root)")
    ap.add_argument("--apt-update", action="store_true", help="run apt-get update before installing")
    ap.add_argument("--packages", nargs="*", default=list(PHOTOS), choices=list(PHOTOS), metavar="PKG",
                    help="subset of the packages (default: all of them)")
    ap.add_argument("--size", type=int, default=128, help="crop side in pixels")
    ap.add_argument("--crops-per-photo", type=int, default=64)
    ap.add_argument("--scale", type=float, nargs=2, default=(0.25, 1.0), metavar=("LO", "HI"),
                    help="crop side as a fraction of the photo's shorter side")
    ap.add_argument("--max-side", type=int, default=1024, help="photos are first shrunk to this longer side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help=".npz or .pt (default runs/photo_pool.npz; none with --export-photos)")
    ap.add_argument("--export-photos", default=None, metavar="DIR",
                    help="write the photos themselves (JPEG, longer side --max-side) and DIR/sources.json instead "
                         "of a crop pool: small enough to carry to a machine without network")
    a = ap.parse_args()

    if a.install:
        apt_install(a.packages, a.apt_update)
    t0 = time.time()
    sources = collect(a.packages)
    photos = []
    for s in sources:
        photos.append(load_photo(s["file"], a.max_side))
        s["photo_size"] = [int(photos[-1].shape[1]), int(photos[-1].shape[0])]  # width, height as loaded
    if a.export_photos:
        export_photos(Path(a.export_photos), photos, sources)
        if a.out is None:
            return
    cfg = CropConfig(size=a.size, scale=tuple(a.scale))
    pool = build_pool(photos, sources, a.crops_per_photo, cfg, seed=a.seed)
    out = save_pool(a.out or "runs/photo_pool.npz", pool)

    summary = {}
    for s in sources:
        row = summary.setdefault(s["package"], {"version": s["version"], "licenses": [], "photos": []})
        if s["license"] not in row["licenses"]:
            row["licenses"].append(s["license"])
        row["photos"].append({k: s[k] for k in ("file", "license", "copyright", "upstream_license", "author")
                              if k in s})
    manifest = {"pool": str(out), "crops": len(pool), "size": pool.size, "info": pool.info,
                "packages": summary, "excluded": EXCLUDED}
    Path(str(out) + ".json").write_text(json.dumps(manifest, indent=2) + "\n")

    print(f"{'package':30s} {'version':22s} {'photos':>6s}  license(s) from /usr/share/doc/PKG/copyright")
    for pkg, row in summary.items():
        print(f"{pkg:30s} {row['version']:22s} {len(row['photos']):6d}  {', '.join(row['licenses'])}")
    print(f"pool: {len(pool)} crops of {pool.size}x{pool.size} from {len(sources)} photos "
          f"({a.crops_per_photo} per photo, seed {a.seed}) -> {out} ({out.stat().st_size / 2**20:.1f} MiB) "
          f"+ {out}.json, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
