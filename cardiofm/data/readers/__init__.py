"""cardiofm.data.readers."""
