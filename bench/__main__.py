"""`python -m bench`: see bench.cli; `python -m bench gpu-check --out DIR`: bench.gpu_check;
`python -m bench loader`: bench.loader; `python -m bench dask`: bench.cluster;
`python -m bench partial-writes`: bench.partial_writes."""

import sys

if sys.argv[1:2] == ["gpu-check"]:
    from bench.gpu_check import main as gpu_check

    sys.exit(gpu_check(sys.argv[2:]))
if sys.argv[1:2] == ["dask"]:
    from bench.cluster import main as dask_bench

    sys.exit(dask_bench(sys.argv[2:]))
if sys.argv[1:2] == ["partial-writes"]:
    from bench.partial_writes import main as partial_writes

    sys.exit(partial_writes(sys.argv[2:]))
if sys.argv[1:2] == ["loader"]:
    from bench.loader import main as loader

    sys.exit(loader(sys.argv[2:]))

from bench.cli import main

sys.exit(main())
