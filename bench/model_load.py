"""Model start-up: `load_model` with and without torch's random initialisation of the network.

    python -m bench.model_load [--weights COCO.pth] [--model coco] [--repeats 5] [--threads 1]

`segcli.models.weights.load_model` builds the network inside `uninitialised_weights()` (the strict
`load_state_dict` replaces every tensor anyway). The other arm runs the same load with that
block made a no-op, as every load did before. CPU seconds (`time.process_time`) per load,
the two arms interleaved in one process, after one warm-up load.
"""

from __future__ import annotations

import contextlib
import statistics
import time

from bench.common import bench_parser, coco_weights, table_header, table_row, write_json


def main() -> None:
    p = bench_parser(__doc__, coco_weights=True)
    p.add_argument("--model", default="coco", help="registered model the checkpoint is for")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (CPU time grows with them)")
    args = p.parse_args()
    import torch

    import segcli.models.weights as weights

    torch.set_num_threads(args.threads)
    ckpt = coco_weights(args)
    skip_init = weights.uninitialised_weights
    arms = {"random init (before)": contextlib.nullcontext, "uninitialised (segcli)": skip_init}
    weights.load_model(args.model, weights=ckpt, device="cpu")  # warm-up: imports, file cache
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    try:
        for _ in range(args.repeats):
            for name, block in arms.items():
                weights.uninitialised_weights = block  # type: ignore[assignment]
                start = time.process_time()
                weights.load_model(args.model, weights=ckpt, device="cpu")
                seconds[name].append(time.process_time() - start)
    finally:
        weights.uninitialised_weights = skip_init
    table_header("load", "median CPU s", "runs")
    for name, runs in seconds.items():
        table_row(name, f"{statistics.median(runs):.3f}", " ".join(f"{s:.2f}" for s in runs))
    before, after = (statistics.median(runs) for runs in seconds.values())
    print(f"ratio: {before / after:.1f}x less CPU per load")
    write_json(args.json, {"model": args.model, "threads": args.threads, "cpu_seconds": seconds})


if __name__ == "__main__":
    main()
