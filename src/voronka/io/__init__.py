"""Data in and out: readers that sniff files, parse values, map columns, and report every bad row."""
