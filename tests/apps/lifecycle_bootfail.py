"""A worker class that cannot boot: its `setup()` raises, as a broken worker plugin would.

Used as `--worker-class lifecycle_bootfail.FailingWorker` to provoke the "worker failed to
boot" exit code (3), as opposed to the app-load failure (4). The app is `lifecycle_app:app`.
"""

from __future__ import annotations

from wsgid.workers.sync import SyncWorker


class FailingWorker(SyncWorker):
    kind = "failing"

    def setup(self) -> None:
        raise RuntimeError("lifecycle_bootfail: this worker refuses to boot")
