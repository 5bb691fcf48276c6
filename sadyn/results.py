"""Results files: one JSON per experiment run (schema in DESIGN.md).

A results file holds everything the report needs and nothing else is read by the report::

    {"schema": "sadyn.results/1", "name": ..., "claim": ..., "config": {...},
     "environment": {...}, "seed": ..., "wall_time_s": ..., "data": {...},
     "figures": {"name": {"kind": "line|scatter|...", ...numbers...}},
     "verdict": {"criterion": ..., "passed": bool | None, "numbers": {...}}}
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sadyn.errors import DataFormatError
from sadyn.io import atomic_write_json
from sadyn.paths import portable_record

SCHEMA = "sadyn.results/1"


def environment() -> dict[str, Any]:
    """Versions, device and thread count: enough to say where a number came from."""
    import numpy
    import scipy
    import torch

    import sadyn

    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)}"
    return {
        "sadyn": sadyn.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_results(path: str | Path, record: dict[str, Any]) -> Path:
    """Write a results record atomically, adding ``schema`` and ``environment``. Absolute paths
    in it are written relative to the file's folder, the working folder or the repository
    (:func:`sadyn.paths.portable_record`), so no machine's paths end up in a results file;
    ``data`` is left as it is where a ``data_hash`` covers it."""
    base = Path(path).parent
    record = {
        k: v if (k == "data" and "data_hash" in record) else portable_record(v, base)
        for k, v in record.items()
    }
    record = {"schema": SCHEMA, **record}
    record.setdefault("environment", environment())
    return atomic_write_json(path, record)


def read_results(path: str | Path) -> dict[str, Any]:
    """Read a results file, checking that it is one (clear error otherwise)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"not a readable results JSON ({exc})", path) from exc
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise DataFormatError(f"not a sadyn results file (schema != {SCHEMA!r})", path)
    return record
