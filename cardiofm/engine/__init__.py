"""cardiofm.engine."""
