"""Synthetic logs with ground truth: HDFS-like block lifecycles and BGL-like node logs."""
