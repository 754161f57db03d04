"""The `cardiofm` command line: `main` (lazy subcommand table, one error handler) and one module per subcommand.
May import anything, but only inside `run()`: importing a subcommand module must stay cheap."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
