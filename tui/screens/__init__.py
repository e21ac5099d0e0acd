"""Screens of the xaug TUI: queue, job detail, log, study, gallery, reader study and small prompts."""
