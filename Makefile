# The README's two commands: `make demo` and `make test`. Both set up what they need first.
PYTHON ?= python3
VENV := .venv
VENV_TL3 := .venv-tl3
# One torch thread: the workloads are small, and on a shared 2-core machine a second thread
# mostly spins (SAE training measured 17x slower with 2 threads under load).
OFFLINE := HF_HUB_OFFLINE=1 TQDM_DISABLE=1 OMP_NUM_THREADS=1

.PHONY: setup demo test test-tl4 test-tl3 clean

# The main environment: current TransformerLens (4.x), notebooks, tests and docs.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[notebooks,test,docs]"
	touch $@

# A second environment with TransformerLens 3.9 (HookedTransformer), the version sae-lens 6 needs.
$(VENV_TL3)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV_TL3)
	$(VENV_TL3)/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]" \
		"transformer-lens==3.9.*" "sae-lens>=6,<7"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(OFFLINE) $(VENV)/bin/saekit discover --model toy-4l --task ioi --seeds 10

test: test-tl4 test-tl3

test-tl4: $(VENV)/.installed
	$(OFFLINE) $(VENV)/bin/python -m pytest -q

test-tl3: $(VENV_TL3)/.installed
	$(OFFLINE) $(VENV_TL3)/bin/python -m pytest -q -m "not slow and not notebooks and not docs"

clean:
	rm -rf $(VENV) $(VENV_TL3) site .pytest_cache
