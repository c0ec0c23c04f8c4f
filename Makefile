# Every target creates .venv and installs what it needs, so each works on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install -q -c constraints.txt
PORT   ?= 8000
CONFIG ?= models/train-config.json
RUN    ?= runs/phase1
MODEL  ?= models/deblur-generator.onnx
THREADS ?= 2

.PHONY: serve test lint train export eval score photos bench clean browser-deps proxy-deps redis-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.serve: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[train,dev]'
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	PORT=$(PORT) $(BIN)/deblur-serve

# The browser-page test drives Debian's chromium; install it when missing and we may (root + apt).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else echo "note: chromium + chromium-driver missing (not root): the browser test will be skipped"; fi; \
	fi

# The proxy tests and bench.scale run Debian's nginx (openssl makes their TLS certificate); same pattern.
proxy-deps:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] || ! command -v openssl >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light openssl; \
	  else echo "note: nginx or openssl missing (not root): the proxy tests will be skipped"; fi; \
	fi

# The Redis-mode job tests start Debian's redis-server on a free loopback port; install it the same way.
redis-deps:
	@if ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else echo "note: redis-server missing (not root): the Redis job tests will be skipped"; fi; \
	fi

test: $(VENV)/.dev browser-deps proxy-deps redis-deps
	$(BIN)/ruff check service training tests bench
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check service training tests bench

photos: $(VENV)/.dev
	$(BIN)/deblur-photos --out data/photos

train: $(VENV)/.dev
	$(BIN)/deblur-train --config $(CONFIG) $(ARGS)

export: $(VENV)/.dev
	$(BIN)/deblur-export --run-dir $(RUN) --out $(RUN)/model.onnx $(ARGS)

eval: $(VENV)/.dev
	$(BIN)/deblur-eval --model $(MODEL) --out runs/eval $(ARGS)

# A kernel-aware run's score as docs/kernel-aware.md reports it: export the chain (its config's guide and
# corrector), then the independent protocol, then the own protocol with the real photos' before/after crops.
score: $(VENV)/.dev photos
	$(BIN)/deblur-export --run-dir $(RUN) --out $(RUN)/export/refiner.onnx
	$(BIN)/deblur-eval --model $(RUN)/export/refiner.onnx --protocol independent --threads $(THREADS) --out $(RUN)/independent
	$(BIN)/deblur-eval --model $(RUN)/export/refiner.onnx --threads $(THREADS) --real data/photos/real-blur --out $(RUN)/own

bench: $(VENV)/.dev
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
