"""One handler per Flight SQL command, grouped by what they touch; each maps a typed command onto engine calls."""
