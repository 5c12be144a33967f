"""Developer scripts: protocol test vectors and the check command."""
