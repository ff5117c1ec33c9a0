"""Command-line tools behind scripts/ (argparse mains)."""
