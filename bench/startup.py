"""`segcli --help` start-up time against `python -c "import typer, rich"` (goal: <= 1.5x).

python -m bench.startup [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    from pathlib import Path

    beside = Path(sys.executable).with_name("segcli")
    segcli = str(beside) if beside.exists() else shutil.which("segcli") or sys.exit("segcli is not on PATH")
    base = timed([sys.executable, "-c", "import typer, rich"], args.runs)
    help_time = timed([segcli, "--help"], args.runs)
    torch_loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv=['segcli','--help']\n"
            "from segcli.cli.root import main\ntry: main()\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules, file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
    ).stderr.strip()
    print(f"python -c 'import typer, rich': {base * 1000:.0f} ms (median of {args.runs})")
    print(f"segcli --help: {help_time * 1000:.0f} ms -> ratio {help_time / base:.2f} (goal <= 1.5)")
    print(f"torch imported by --help: {torch_loaded}")


if __name__ == "__main__":
    main()
