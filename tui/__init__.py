"""xaug.tui: the Textual cockpit over the store. It reads the store and sends commands through it; it never trains."""
