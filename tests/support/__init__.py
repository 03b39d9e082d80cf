"""What the test tiers share: the repository's root, a compose project per test (stack.py), the service as
its own process (service.py) and the product's stream client following a book from another thread (book.py)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
