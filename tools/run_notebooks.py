"""Execute the notebooks in place on the real data sets, so they are committed with their outputs.

    python tools/run_notebooks.py                      # every notebook in notebooks/
    python tools/run_notebooks.py notebooks/03_dvbpr.ipynb --timeout 900

`make notebooks` runs this. The data folder is FASHIONREC_DATA (default ../shared/data next to
the repository); FASHIONREC_NOTEBOOK_SMALL is removed, so each notebook takes its full (real
data) settings. The kernel gets matplotlib's inline backend (Agg, needs no display; plots are
stored as PNG) and TQDM_DISABLE=1: no progress bar (which differs on every run) is stored, nor
tqdm's warning that ipywidgets is absent. Cell timing metadata is not
recorded either, so a re-run changes only what the results change. A notebook whose run fails is
left as it was (nonzero exit, the failing cell named); the others still run.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


NOISE = re.compile(r".*TqdmWarning: IProgress not found.*\n(\s+from \.autonotebook import .*\n)?")


def drop_noise(output: dict) -> dict | None:
    """tqdm.auto's warning that ipywidgets is absent (shown even with TQDM_DISABLE) is dropped."""
    if output.get("output_type") == "stream" and output.get("name") == "stderr":
        output["text"] = NOISE.sub("", output["text"])
        if not output["text"].strip():
            return None
    return output


def run(path: Path, timeout: int) -> float:
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]

    def cell_done(cell, cell_index, **_):
        n = code.index(cell_index) + 1 if cell_index in code else "?"
        print(f"  code cell {n}/{len(code)} done at {time.perf_counter() - start:.0f} s", flush=True)

    client.on_cell_executed = cell_done
    client.execute()
    seconds = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"{path.name}: {len(errors)} error output(s): {errors[0].get('ename')}: {errors[0].get('evalue')}")
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in (drop_noise(o) for o in cell.outputs) if o is not None]
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))

    data = Path(os.environ.get("FASHIONREC_DATA", ROOT.parent / "shared" / "data")).resolve()
    if not data.is_dir():
        print(f"warning: data folder {data} not found: the notebooks fall back to generated data", file=sys.stderr)
    os.environ["FASHIONREC_DATA"] = str(data)
    os.environ.pop("FASHIONREC_NOTEBOOK_SMALL", None)
    # Agg renders the PNGs; the inline backend (matplotlib's Agg inside Jupyter) stores them.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ["TQDM_DISABLE"] = "1"
    print(f"data: {data}")

    failed = []
    for path in paths:
        print(f"{path.name} ...", flush=True)
        try:
            seconds = run(path, args.timeout)
        except Exception as e:  # noqa: BLE001 - report and go on with the next notebook
            failed.append(path.name)
            print(f"  FAILED: {str(e)[-2000:]}", flush=True)
            continue
        print(f"  {seconds:.0f} s, {path.stat().st_size / 1e6:.2f} MB", flush=True)
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
