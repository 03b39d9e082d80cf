# Thin front for ./hftlive (the real entry point).
.PHONY: wheelhouse setup test bench
wheelhouse: setup
	./hftlive wheels
setup:
	./hftlive setup --install
test:
	./hftlive test
bench:
	./hftlive doctor >/dev/null && .venv/bin/python bench/wheels.py
