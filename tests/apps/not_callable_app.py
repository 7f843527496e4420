"""An app module that imports fine but whose `app` is not callable (and has no `missing`)."""

from _importlog import record_import

record_import(__name__)

app = 42
