"""cardiofm.pretrain."""
