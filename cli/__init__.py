"""hftlive's command-line entry point: base images, wheels, images, up/down, tests."""
