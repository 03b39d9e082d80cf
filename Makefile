# Thin front for ./hftlive (the real entry point).
.PHONY: wheelhouse images setup test bench bench-service bench-live bench-orders cibuildwheel aarch64
wheelhouse: setup
	./hftlive wheels
images:
	./hftlive images
setup:
	./hftlive setup --install
test:
	./hftlive test
bench:
	./hftlive test --collect-only -q >/dev/null && .venv/bin/python bench/wheels.py
bench-service:
	./hftlive test --collect-only -q >/dev/null && .venv/bin/python bench/service.py
bench-live:
	./hftlive test --collect-only -q >/dev/null && .venv/bin/python bench/live.py --floor
bench-orders:
	./hftlive test --collect-only -q >/dev/null && .venv/bin/python bench/orders.py
# release.yml's cibuildwheel build, here, in a local manylinux-like image (README, "Releases")
cibuildwheel:
	./hftlive cibuildwheel
# the aarch64 wheel and connector, cross-built here and checked under qemu-user (README, "Releases")
aarch64:
	./hftlive aarch64
