"""`python -m cardiofm.cli` runs the CLI (launchers such as accelerate start it this way)."""
import sys

from .main import main

sys.exit(main())
