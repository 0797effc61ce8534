"""mmrf's first (parsing) load of a data directory against pandas' and polars' read_csv
of the same CSV files, in one window.

    python3 bench/csv_peers.py --data DIR [--mmrf target/release/mmrf] [--rounds 3] [--no-parquet]

Needs pandas and polars (`pip install pandas polars`). Each round times, in turn:
`mmrf bench ingest --data DIR` (its `csv_parse`: every CSV parsed into typed columns and
checked, the binary candidate log's ids checked, no cache written; and, unless
`--no-parquet`, its `parquet_parse`, the same data from the Parquet copy), `pandas.read_csv` of every CSV
file in DIR, and `polars.read_csv` of the same files. Best of the rounds for each.
"""

import argparse
import pathlib
import re
import subprocess
import time

import pandas
import polars


def timed(read, files):
    start = time.perf_counter()
    rows = sum(len(read(f)) for f in files)
    return time.perf_counter() - start, rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=pathlib.Path)
    p.add_argument("--mmrf", default="target/release/mmrf")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-parquet", action="store_true", help="leave out the Parquet copy (large worlds)")
    a = p.parse_args()
    files = sorted(a.data.glob("*.csv"))
    best = {}
    for _ in range(a.rounds):
        extra = ["--no-parquet"] if a.no_parquet else []
        out = subprocess.run(
            [a.mmrf, "bench", "ingest", "--data", str(a.data), *extra], capture_output=True, text=True, check=True
        ).stdout
        for key in ("csv_parse",) if a.no_parquet else ("csv_parse", "parquet_parse"):
            value = float(re.search(rf"\b{key}=([0-9.]+)s", out).group(1))
            best[f"mmrf {key}"] = min(best.get(f"mmrf {key}", value), value)
        for name, read in [("pandas read_csv", pandas.read_csv), ("polars read_csv", polars.read_csv)]:
            secs, rows = timed(read, files)
            best[name] = min(best.get(name, secs), secs)
    print(f"{len(files)} CSV files, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB, in {a.data}")
    for name, secs in best.items():
        print(f"{name:26s} {secs:6.2f} s")


if __name__ == "__main__":
    main()
