"""cardiofm.models."""
