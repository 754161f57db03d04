"""cardiofm.finetune."""
