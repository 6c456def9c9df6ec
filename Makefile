# rap_planner: `make demo` and `make test` are the two entry points; both set up when needed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SITE = $(shell $(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
DEPS_STAMP := $(VENV)/.deps-stamp
MSGS_STAMP := $(VENV)/.msgs-stamp
SETUP_STAMP := $(VENV)/.setup-stamp
MSG_BUILD := build/interfaces
MSG_PREFIX := build/interfaces-install
MSG_SRC := build/interfaces-src
# pip's find-links on these machines point at folders that may be absent: hide that noise.
PIP := $(PY) -m pip install -q --disable-pip-version-check
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: setup test lint pytest demo colcon clean

setup: $(SETUP_STAMP)

$(DEPS_STAMP): requirements.txt requirements-ros.txt
	test -x $(PY) || python3 -m venv $(VENV)
	set -o pipefail; $(PIP) -r requirements-ros.txt -r requirements.txt $(QUIET_PIP)
	@# The wheels' CMake exports point at the wheel builder's Python: repoint them at this venv.
	INC=$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['include'])"); \
	NP=$$($(PY) -c "import numpy; print(numpy.get_include())"); \
	grep -rl /opt/python/cp311-cp311 $(VENV)/share --include='*.cmake' | xargs -r sed -i \
	  -e "s#/opt/python/cp311-cp311/include/python3.11#$$INC#g" \
	  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$$NP#g"
	touch $@

# Interfaces: rosidl generates a Python package named rap_planner; its msg/ and typesupport
# modules are copied into the (editable) hand-written package, its libraries into the venv's lib/
# where the ROS wheels' bootstrapper puts them on LD_LIBRARY_PATH.
$(MSGS_STAMP): $(DEPS_STAMP) $(wildcard msg/*.msg) CMakeLists.txt package.xml
	@# CMake refuses exported include paths inside its source dir (.venv is): configure a copy.
	rm -rf $(MSG_PREFIX) $(MSG_SRC) && mkdir -p $(MSG_SRC) && cp -r CMakeLists.txt package.xml msg $(MSG_SRC)/
	. $(VENV)/bin/activate && export AMENT_PREFIX_PATH=$$VIRTUAL_ENV && \
	cmake -S $(MSG_SRC) -B $(MSG_BUILD) -DRAP_PLANNER_INTERFACES_ONLY=ON -DBUILD_TESTING=OFF \
	  -DCMAKE_PREFIX_PATH=$$VIRTUAL_ENV -DPython3_EXECUTABLE=$$VIRTUAL_ENV/bin/python \
	  -DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(MSG_PREFIX) > $(MSG_BUILD).log 2>&1 && \
	cmake --build $(MSG_BUILD) -j2 >> $(MSG_BUILD).log 2>&1 && \
	cmake --install $(MSG_BUILD) >> $(MSG_BUILD).log 2>&1 || { tail -40 $(MSG_BUILD).log; exit 1; }
	rm -rf rap_planner/msg rap_planner/*.so
	cp -r $(MSG_PREFIX)/lib/python3.11/site-packages/rap_planner/msg rap_planner/msg
	cp $(MSG_PREFIX)/lib/python3.11/site-packages/rap_planner/*.so rap_planner/
	cp -P $(MSG_PREFIX)/lib/*.so $(VENV)/lib/
	touch $@

$(SETUP_STAMP): $(MSGS_STAMP) setup.py
	set -o pipefail; $(PIP) --no-deps --no-build-isolation -e . $(QUIET_PIP)
	touch $@

lint: setup
	$(VENV)/bin/ruff check rap_planner test
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest -q

test: lint pytest

demo: setup
	$(VENV)/bin/rap-planner demo

# Proves the colcon path on top of the pip ROS: a workspace in build/colcon holding a copy of the
# package (as a user's clone in src/ would be), built, installed and imported from install/.
colcon: setup
	rm -rf build/colcon && mkdir -p build/colcon/src/rap_planner
	git ls-files -z | xargs -0 cp --parents -t build/colcon/src/rap_planner
	. $(VENV)/bin/activate && export AMENT_PREFIX_PATH=$$VIRTUAL_ENV && cd build/colcon && \
	colcon build --event-handlers console_direct- \
	  --cmake-args -DPython3_EXECUTABLE=$$VIRTUAL_ENV/bin/python -DBUILD_TESTING=OFF && \
	. install/setup.bash && export AMENT_PREFIX_PATH=$$VIRTUAL_ENV:$$AMENT_PREFIX_PATH && cd /tmp && \
	python -c "import rap_planner, rap_planner.msg as m, rap_planner.cli; print('colcon install OK:', rap_planner.__file__, m.RiskAwarePlan.__name__)" && \
	$(CURDIR)/build/colcon/install/rap_planner/lib/rap_planner/rap-planner --version && \
	ls $(CURDIR)/build/colcon/install/rap_planner/share/rap_planner/launch $(CURDIR)/build/colcon/install/rap_planner/share/rap_planner/config

clean:
	rm -rf build $(VENV) rap_planner/msg rap_planner/*.so *.egg-info
