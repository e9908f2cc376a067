"""`python -m bench`: see bench.cli; `python -m bench gpu-check --out DIR`: bench.gpu_check."""

import sys

if sys.argv[1:2] == ["gpu-check"]:
    from bench.gpu_check import main as gpu_check

    sys.exit(gpu_check(sys.argv[2:]))

from bench.cli import main

sys.exit(main())
