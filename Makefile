# The two commands of README.md: `make run` starts the app, `make test` runs the whole suite.
# Each creates .venv and installs what it needs the first time; later calls skip the install.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint bench pretrained clean

$(APP_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV_STAMP): $(APP_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(APP_STAMP)
	$(BIN)/streamlit run streamlit_app.py

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

bench: $(APP_STAMP)
	$(BIN)/python bench/train_speed.py

pretrained: $(APP_STAMP)
	$(BIN)/python bench/make_pretrained.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
