"""Input/output: images, multi-view datasets, videos, run folders."""
