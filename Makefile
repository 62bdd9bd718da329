# Two commands on a fresh machine:  `make demo`  and  `make test`  (each creates .venv if missing).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test docs parity gpu-onnxruntime browser app clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -c constraints.txt -e '.[test,docs]'
	$(PIP) install -q --no-deps facexlib==0.3.0  # reference for the IR-SE50 parity test only
	touch $@

demo: $(VENV)/.installed  ## offline default: tiny Wan + Lynx adapters + dlib's face models, one short generation on CPU
	$(PY) -m lynx_ext.demo

test: $(VENV)/.installed  ## the whole test suite (CPU)
	$(PY) -m pytest -q

docs: $(VENV)/.installed  ## build the documentation site into ./site
	$(VENV)/bin/mkdocs build --strict

parity: $(VENV)/.installed  ## official-code parity on the bundled fixtures
	$(PY) -m lynx_ext.parity tests/fixtures/lynx_official_tiny/full tests/fixtures/lynx_official_tiny/lite

app: $(VENV)/.installed  ## the local web app on http://127.0.0.1:7860 (offline tiny preset)
	$(VENV)/bin/diffsynth-ext app --extension lynx

gpu-onnxruntime: $(VENV)/.installed  ## swap the CPU onnxruntime for onnxruntime-gpu (CUDA machines)
	$(PIP) uninstall -y onnxruntime
	$(PIP) install -c constraints.txt onnxruntime-gpu

browser:  ## Debian's chromium + chromedriver for the app's and the HTML report's browser tests (root; skipped without them)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

clean:
	rm -rf $(VENV) site outputs .pytest_cache
