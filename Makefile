# On a fresh Debian machine, as root:
#   make demo   - the main job: a local InfluxDB, the lab fleet, `fleetmon run` with a live view
#   make test   - the whole suite against real peers (what .ci/run calls)
#   make check  - the edit loop: lint and the tests that need no root and no peer (about a minute)
# Each installs what it needs (Debian packages, a venv, pip packages), idempotently.

SHELL      := /bin/bash
PYTHON     ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
STAMPS     := .stamps
APT_PKGS   := influxdb influxdb-client fping curl iproute2 procps tzdata mosquitto python3-venv gcc python3-dev \
              snmp snmpd snmptrapd nftables ffmpeg systemd \
              python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
              gstreamer1.0-plugins-ugly gstreamer1.0-tools chromium chromium-driver \
              fonts-noto-cjk poppler-utils libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
              faketime libfaketime opencv-doc
DEMO_SECONDS ?= 0

.PHONY: all deps demo test check bench clean

all: test

$(STAMPS)/apt: Makefile
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

# probes/_icmpcore.c: the editable install compiles it beside its source; a change rebuilds it.
$(STAMPS)/venv: pyproject.toml probes/_icmpcore.c $(STAMPS)/apt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

deps: $(STAMPS)/venv

# The suite in parallel, one worker per core, each test file kept on one worker (its module
# fixtures built once); labs, ports and temp dirs are per process already. PYTEST_WORKERS=0: serial.
PYTEST_WORKERS ?= auto

test: deps
	$(PY) -m ruff check --quiet .
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not alone"
	$(PY) -m pytest -q -m alone

# Markers in pyproject.toml: `root` (network namespaces, raw sockets), `peer` (a real peer program).
check: deps
	$(PY) -m ruff check --quiet .
	$(PY) -m pytest -q -m "not root and not peer"

demo: deps
	DEMO_SECONDS=$(DEMO_SECONDS) $(PY) -m lab.demo

bench: deps
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(STAMPS) *.egg-info
