"""Which glibc (and libstdc++) a built wheel needs, measured from its extension.

    python tools/wheel-link/check_glibc.py [WHEEL] [--platform manylinux_2_28]

For each shared object in the wheel (default: the newest ``dist/fashionrec-*.whl``) it prints
the highest version of each symbol-version family the object imports: GLIBC_ (glibc: libc,
libm, libpthread, libdl), GLIBCXX_ and CXXABI_ (libstdc++), GCC_ (libgcc_s), read with
``objdump -T`` (binutils). It then names every symbol that needs a version newer than the
platform allows, and exits with status 1 if there is one.

The limits are auditwheel's manylinux_2_28 policy, the platform of torch 2.11's own wheels
(glibc 2.28; libstdc++ of gcc 8): GLIBC_2.28, GLIBCXX_3.4.24, CXXABI_1.3.11, GCC_7.0.0. The
same numbers by hand::

    unzip -o -d /tmp/whl dist/fashionrec-*.whl
    objdump -T /tmp/whl/fashionrec/_core.abi3.so | grep -o '(GLIBC[^)]*)' | sort -uV | tail -1
"""

from __future__ import annotations

import argparse
import glob
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# auditwheel's policy (manylinux-policy.json) for x86_64: the newest version of each family.
PLATFORMS = {
    "manylinux_2_28": {"GLIBC": "2.28", "GLIBCXX": "3.4.24", "CXXABI": "1.3.11", "GCC": "7.0.0"},
    "manylinux_2_34": {"GLIBC": "2.34", "GLIBCXX": "3.4.29", "CXXABI": "1.3.13", "GCC": "7.0.0"},
}
# `  DF *UND*  0000000000000000 (GLIBC_2.29) log` (the parentheses: objdump's "hidden" mark).
NEED = re.compile(r"\*UND\*\s+\S+\s+\(?(GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)\)?\s+(\S+)")


def key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def needs(so: Path) -> dict[str, dict[str, list[str]]]:
    """{family: {version: [symbols]}} of the versioned symbols ``so`` imports."""
    out = subprocess.run(["objdump", "-T", str(so)], check=True, capture_output=True, text=True)
    found: dict[str, dict[str, list[str]]] = {}
    for line in out.stdout.splitlines():
        m = NEED.search(line)
        if m:
            family, version, symbol = m.groups()
            found.setdefault(family, {}).setdefault(version, []).append(symbol)
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheel", nargs="?", help="default: the newest dist/fashionrec-*.whl")
    ap.add_argument("--platform", default="manylinux_2_28", choices=sorted(PLATFORMS))
    args = ap.parse_args()
    wheel = args.wheel
    if wheel is None:
        found = sorted(glob.glob(str(ROOT / "dist" / "fashionrec-*.whl")), key=lambda p: Path(p).stat().st_mtime)
        if not found:
            sys.exit("no dist/fashionrec-*.whl: run `make wheel` first")
        wheel = found[-1]
    limits = PLATFORMS[args.platform]
    print(f"{Path(wheel).name} (tag {Path(wheel).stem.split('-')[-1]})")
    too_new = 0
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            names = [n for n in z.namelist() if re.search(r"\.so(\.|$)", n)]
            z.extractall(tmp, names)
        for name in names:
            found = needs(Path(tmp) / name)
            print(f"  {name}")
            for family in ("GLIBC", "GLIBCXX", "CXXABI", "GCC"):
                versions = sorted(found.get(family, {}), key=key)
                if not versions:
                    continue
                limit = limits[family]
                over = [v for v in versions if key(v) > key(limit)]
                mark = "above" if over else "within"
                need = f"{family}_{versions[-1]}"
                print(f"    {need:<16} needed at most; {mark} {args.platform}'s {family}_{limit}")
                for v in over:
                    too_new += len(found[family][v])
                    print(f"      {family}_{v}: {' '.join(sorted(set(found[family][v])))}")
    if too_new:
        print(f"{too_new} symbol(s) need a newer platform than {args.platform}")
        return 1
    print(f"every versioned symbol is within {args.platform}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
