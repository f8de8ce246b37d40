"""The `voronka` command line: thin commands over the workspace."""
