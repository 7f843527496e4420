"""An app module whose own import fails: it imports a dependency that does not exist.

The loader must say the ImportError came from inside this module, not that the module is missing.
"""

from _importlog import record_import

record_import(__name__)

import wsgid_test_missing_dependency  # type: ignore[import-not-found]  # noqa: E402, F401  (the point of this module)

app = None
