# The two commands of the README. Logic lives in scripts/ so CI and people run the same thing.
.PHONY: run test lint

# Serve the bundled demo app with the annotated example configuration on 127.0.0.1:8000.
# ARGS adds command-line flags, e.g. `make run ARGS="--workers 2"`.
run:
	@scripts/setup-env.sh
	exec .venv/bin/wsgid --config config/app.toml $(ARGS)

# Create the environment, install what the tests need (apt + pip), lint, type-check, run all tests.
# PYTEST_ARGS narrows the run, e.g. `make test PYTEST_ARGS="tests/integration -k flask"`.
test:
	@scripts/test.sh $(PYTEST_ARGS)

lint:
	@scripts/setup-env.sh test
	.venv/bin/ruff check .
	.venv/bin/mypy

# Packages (docs/packaging.md). The .deb and the .rpm land in dist/; `make image` tags the
# container image wsgid:VERSION and wsgid:latest (IMAGE=name:tag for another tag). Each target
# first installs the Debian packages its build needs.
.PHONY: deb rpm image

deb:
	@scripts/apt-deps.sh dpkg-dev debhelper help2man python3-pip python3-venv python3-dev gcc
	packaging/build-deb.sh dist

rpm:
	@scripts/apt-deps.sh rpm help2man python3-pip python3-venv python3-dev gcc
	packaging/build-rpm.sh dist

image:
	@scripts/apt-deps.sh podman mmdebstrap
	packaging/build-image.sh $(IMAGE)

# wrk against wsgid, gunicorn and granian in one run (and wsgid behind HAProxy, with and without
# PROXY v2); prints the ratios and writes bench/RESULTS.md (docs/performance.md).
# BENCH_ARGS e.g. "--smoke" or "--runs 5".
.PHONY: bench
bench:
	@scripts/apt-deps.sh wrk haproxy
	bench/run $(BENCH_ARGS)

# The hardening soak (tests/hardening/README.md): good traffic mixed with rounds of attacks,
# WSGID_SOAK_SECONDS (default 600) per worker kind; prints a summary to paste into a report.
# A short run: `make soak WSGID_SOAK_SECONDS=60`.
.PHONY: soak
soak:
	@scripts/setup-env.sh test
	.venv/bin/python -m pytest -m slow tests/hardening -s -p no:cacheprovider $(PYTEST_ARGS)
