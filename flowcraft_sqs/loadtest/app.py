"""The `--app` for load tests: `flowcraft-worker --app flowcraft_sqs.loadtest.app`.

Exposes `registry` (the load-test node implementations) and `blueprints`: the fixed
catalogue of workloads.CATALOGUE plus the ids listed in FLOWCRAFT_LOADTEST_BLUEPRINTS
(comma-separated, e.g. `lt-chain-25,lt-cpu-7ms-diamond-3`). A worker must know a blueprint
before runs of it arrive, so start the fleet with the ids you will load-test.

With FLOWCRAFT_LOADTEST_METER_DIR set (the self-contained harness sets it), importing this
module also meters the worker's AWS clients (capacity units, bytes): see meter.py. With
FLOWCRAFT_LOADTEST_PROC_DIR set, each process records its role (procroles.py).
"""

from __future__ import annotations

import os
from typing import Final

from . import meter, procroles, workloads

BLUEPRINTS_ENV: Final = "FLOWCRAFT_LOADTEST_BLUEPRINTS"

registry = dict(workloads.REGISTRY)
blueprints = workloads.catalogue(os.environ.get(BLUEPRINTS_ENV, "").split(","))

meter.install_in_worker()
procroles.record()
