"""nbval runs every notebook in quick mode: a few training steps and fewer samples."""
import os

os.environ.setdefault("CONDIFF_QUICK", "1")
