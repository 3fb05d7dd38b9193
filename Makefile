# Faceprint: `make run` serves the API offline, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
FACEPRINT_DATA_DIR ?= $(CURDIR)/data
FACEPRINT_FACES_DIR ?= $(abspath $(CURDIR)/../shared/faces)
export FACEPRINT_DATA_DIR FACEPRINT_FACES_DIR

.PHONY: run test bench lint check-faces check-browser clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed: set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(STAMP)
	$(BIN)/chalice local --stage local --host 127.0.0.1 --port $(PORT) --no-autoreload

test: $(STAMP) check-faces check-browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

check-faces:
	@test -f "$(FACEPRINT_FACES_DIR)/people.json" || { \
	  echo "make test needs the shared test photos: $(FACEPRINT_FACES_DIR)/people.json is missing."; \
	  echo "Put the shared faces/ folder (photos + people.json) there, or set FACEPRINT_FACES_DIR=/path/to/faces."; \
	  exit 2; }

# The console's browser test drives Debian's Chromium (Playwright's own browser
# download cannot work here): install it when missing, or stop and say how.
CHROMIUM := /usr/bin/chromium
check-browser:
	@test -x $(CHROMIUM) || { \
	  echo "make test drives Debian's Chromium headless; $(CHROMIUM) is missing: installing it (apt-get install -y chromium)."; \
	  if [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; \
	  fi; \
	  test -x $(CHROMIUM) || { \
	    echo "Chromium could not be installed. Install it as root: apt-get update && apt-get install -y chromium"; \
	    exit 2; }; }

bench: $(STAMP) check-faces
	$(BIN)/python scripts/bench.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
