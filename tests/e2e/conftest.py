"""The end-to-end tier uses the integration tier's fixtures: the wheelhouse and the runtime images."""
from tests.integration.conftest import client, manifest, runtime_images, wheels  # noqa: F401
