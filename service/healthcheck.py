"""`python -m service.healthcheck`: exit 0 when this container's service is ready, for Docker's HEALTHCHECK."""
from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            print(response.read(300).decode(errors="replace"))
            return 0
    except urllib.error.HTTPError as error:   # 503: alive but not ready; the body says why
        print(f"not ready: {error.read(300).decode(errors='replace')}")
    except OSError as error:
        print(f"no answer from {url}: {error}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
