"""Command-line commands, one module per area; each only parses flags and calls the library."""
